using ModelGateway.Bench.StreamSoak;

// dotnet StreamSoak.dll soak --url URL --streams N [--model M] [--ramp-per-second R] [--timeout-seconds T]
// dotnet StreamSoak.dll ttfb --url URL [--requests N] [--warmup N] [--model M]
// Both print one machine-readable "BENCH key=value ..." line on stdout for bench/run.sh.
if (args.Length == 0)
{
    return Fail("a command is required");
}

if (!CommandLine.TryParse(args[1..], out var options, out var error))
{
    return Fail(error);
}

return args[0] switch
{
    "soak" => await SoakCommand.RunAsync(options),
    "ttfb" => await TtfbCommand.RunAsync(options),
    _ => Fail($"unknown command '{args[0]}'"),
};

static int Fail(string message)
{
    Console.Error.WriteLine(message + Environment.NewLine + CommandLine.Usage);
    return 2;
}
