var app = ModelGateway.GatewayApplication.Create(args);
await app.RunAsync();
