using ModelGateway.Configuration;

namespace ModelGateway.Providers.Simulated;

/// <summary><c>kind: simulated</c>: an in-process model server for the demo, tests and benchmarks.</summary>
internal sealed class SimulatedFactory(ProviderServices services) : ProviderAdapterFactory(services)
{
    public override string Kind => ProviderKinds.Simulated;

    public override string SemanticName => "modelgateway.simulated";

    public override DeploymentTier DefaultTier => DeploymentTier.Iaas;

    public override bool HasEndpoint => false;

    protected override bool TakesSimulation => true;

    /// <summary>Always settings (the defaults when the entry has none), so deployments know they are simulated.</summary>
    protected override object? Compile(ProviderDocument document, string path, ConfigContext context)
        => document.Simulate is null
            ? SimulationDefaults.Settings
            : CatalogBuilder.ParseSimulation(SimulationDefaults.Settings, document.Simulate, path + ".simulate", context.Errors);

    public override IProviderAdapter Create(ProviderEndpoint provider) => new SimulatedAdapter(provider, Services.TimeProvider, Services.Options, Services.MediaFetcher);
}
