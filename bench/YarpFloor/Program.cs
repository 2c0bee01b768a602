using ModelGateway.Bench.YarpFloor;

// dotnet YarpFloor.dll --upstream http://127.0.0.1:PORT --urls http://127.0.0.1:PORT
var app = FloorApp.Create(args);
await app.RunAsync();
