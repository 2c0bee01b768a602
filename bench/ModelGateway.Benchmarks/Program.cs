using BenchmarkDotNet.Running;

// dotnet run -c Release --project bench/ModelGateway.Benchmarks -- --filter '*'
BenchmarkSwitcher.FromAssembly(typeof(ModelGateway.Benchmarks.RoutingBenchmarks).Assembly).Run(args);
