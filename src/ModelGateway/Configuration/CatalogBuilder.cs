using System.Collections.Frozen;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using ModelGateway.Forwarding;
using ModelGateway.Providers;
using ModelGateway.Providers.Media;
using ModelGateway.Providers.Simulated;
using ModelGateway.Resilience;
using ModelGateway.Routing;

namespace ModelGateway.Configuration;

/// <summary>
/// Validates a routing document and compiles it into a <see cref="GatewayCatalog"/>. Every problem
/// is collected with its path (<c>routes[2].targets[0]: unknown deployment 'x'</c>); a document with
/// any error produces no catalog, so nothing live changes until the whole file is good.
/// </summary>
internal sealed partial class CatalogBuilder(
    DeploymentStateRegistry states,
    ProviderAdapterRegistry registry,
    FailoverExecutor executor,
    TimeProvider timeProvider,
    ILoggerFactory loggerFactory)
{
    public const string AutoRoute = "auto";

    private static readonly string[] KnownStrategies = ["priority", "weighted", "cost", "latency", "least-busy", "balanced"];
    private static readonly string[] KnownCapabilities = ["chat", "completions", "embeddings", "tools", "vision", "json_schema", "prefill", "images", "audio", "moderations", "files", "batches"];
    private static readonly string[] KnownTiers = ["iaas", "paas", "saas"];
    private static readonly string[] KnownTokenizers = ["o200k", "cl100k", "other", "bytes"];
    private static readonly int[] KnownPercentiles = [50, 90, 95, 99];

    private static readonly RouteResilience DefaultResilience = new(
        MaxAttempts: 3,
        Backoff: TimeSpan.FromMilliseconds(250),
        MaxBackoff: TimeSpan.FromSeconds(5),
        FirstTokenTimeout: TimeSpan.FromSeconds(60),
        ResponseTimeout: TimeSpan.FromMinutes(5),
        IdleTimeout: TimeSpan.FromSeconds(60),
        TotalTimeout: TimeSpan.FromMinutes(10),
        KeepAliveInterval: TimeSpan.FromSeconds(15),
        Hedging: null,
        Continuation: false);

    // Resilience: a short first break (5s) that doubles while the deployment stays down, up to a minute;
    // probes (ProbeSettings.Default) bring a recovered deployment back sooner than any break.
    private static readonly CircuitBreakerSettings DefaultBreaker = new(
        FailureRatio: 0.5,
        MinimumThroughput: 10,
        SamplingDuration: TimeSpan.FromSeconds(30),
        ConsecutiveFailures: 5,
        BreakDuration: TimeSpan.FromSeconds(5))
    {
        MaxBreakDuration = TimeSpan.FromSeconds(60),
    };

    private const int MaxRetries = 10;

    /// <summary>Compiles the document; returns null and fills <paramref name="errors"/> when anything is wrong.</summary>
    public GatewayCatalog? Build(RoutingConfigDocument document, string source, string contentHash, int version, List<ConfigError> errors, List<ConfigError> warnings)
    {
        var defaults = document.Defaults ?? new DefaultsDocument();
        var defaultStrategy = ParseStrategy(defaults.Strategy, "defaults.strategy", errors) ?? RoutingStrategyKind.Priority;
        var defaultResilience = MergeResilience(DefaultResilience, defaults.Resilience, "defaults.resilience", errors);
        var defaultBreaker = MergeBreaker(DefaultBreaker, defaults.CircuitBreaker, "defaults.circuitBreaker", errors);
        var defaultProbe = MergeProbe(ProbeSettings.Default, defaults.Probe, "defaults.probe", errors);
        var defaultWindow = ParseDuration(defaults.LatencyWindow, "defaults.latencyWindow", errors, positive: true) ?? TimeSpan.FromMinutes(5);

        var context = new ConfigContext(errors, warnings) { FromEnvironment = document.FromEnvironment };
        var providers = BuildProviders(document.Providers, context, defaultProbe);
        var deployments = BuildDeployments(document.Deployments, providers, defaultBreaker, defaultWindow, errors, warnings);
        var routes = BuildRoutes(document.Routes, deployments, defaultStrategy, defaultResilience, errors, warnings);
        if (errors.Count > 0)
        {
            return null;
        }

        // Only now, with the whole file valid, touch live state: attach states and build adapters and pipelines.
        foreach (var provider in providers.Values)
        {
            provider.Adapter = provider.Factory.Create(provider);
        }

        var deploymentList = deployments.Values.OrderBy(d => d.Index).ToArray();
        foreach (var deployment in deploymentList)
        {
            deployment.State = states.Attach(deployment, loggerFactory);
        }

        states.Retain(deployments.Keys);
        foreach (var route in routes)
        {
            route.Pipeline = executor.BuildPipeline(route);
        }

        var routeMap = routes.ToFrozenDictionary(r => r.Name, StringComparer.Ordinal);
        return new GatewayCatalog
        {
            Version = version,
            Source = source,
            ContentHash = contentHash,
            LoadedAt = timeProvider.GetUtcNow(),
            Providers = providers.ToFrozenDictionary(StringComparer.Ordinal),
            Deployments = deployments.ToFrozenDictionary(StringComparer.Ordinal),
            Routes = routeMap,
            RouteLookup = routeMap.GetAlternateLookup<ReadOnlySpan<char>>(),
            DeploymentList = deploymentList,
            RouteList = [.. routes],
            SecretFiles = [.. context.SecretFiles.Distinct(StringComparer.Ordinal)],
        };
    }

    private Dictionary<string, ProviderEndpoint> BuildProviders(List<ProviderDocument>? documents, ConfigContext context, ProbeSettings defaultProbe)
    {
        var errors = context.Errors;
        var result = new Dictionary<string, ProviderEndpoint>(StringComparer.Ordinal);
        if (documents is null || documents.Count == 0)
        {
            errors.Add(new("providers", "at least one provider is required"));
            return result;
        }

        var firstSeen = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < documents.Count; i++)
        {
            var path = $"providers[{i}]";
            var doc = documents[i];
            if (doc is null)
            {
                errors.Add(new(path, "empty entry"));
                continue;
            }

            var name = RequireName(doc.Name, path, "provider", firstSeen, i, "providers", errors);
            IProviderAdapterFactory? factory = null;
            if (doc.Kind is null)
            {
                errors.Add(new(path + ".kind", $"required: one of {string.Join(", ", registry.Kinds)}"));
            }
            else if (!registry.TryGet(doc.Kind, out factory))
            {
                errors.Add(new(path + ".kind", $"unknown kind '{doc.Kind}' (known: {string.Join(", ", registry.Kinds)})"));
            }

            var tier = doc.Tier is null ? factory?.DefaultTier : ParseTier(doc.Tier, path + ".tier", errors);
            Uri? baseUri = null;
            Secret? apiKey = null;
            var headers = new List<KeyValuePair<string, Secret>>();
            if (factory is { HasEndpoint: false })
            {
                context.NotFor(doc.BaseUrl, path + ".baseUrl", factory.Kind);
                context.NotFor(doc.ApiKey, path + ".apiKey", factory.Kind);
                context.NotFor(doc.Headers, path + ".headers", factory.Kind);
            }
            else if (factory is not null)
            {
                if (string.IsNullOrWhiteSpace(doc.BaseUrl))
                {
                    baseUri = factory.DefaultBaseUrlFor(doc);
                    if (baseUri is null)
                    {
                        errors.Add(new(path + ".baseUrl", "required for this kind (e.g. https://api.openai.com/v1)"));
                    }
                }
                else if (!Uri.TryCreate(doc.BaseUrl, UriKind.Absolute, out baseUri) || baseUri.Scheme is not ("http" or "https"))
                {
                    errors.Add(new(path + ".baseUrl", $"'{doc.BaseUrl}' is not an absolute http(s) URL"));
                    baseUri = null;
                }

                apiKey = context.ResolveSecret(doc.ApiKey, path + ".apiKey");
                if (doc.ApiKey is null && factory.RequiresApiKey)
                {
                    errors.Add(new(path + ".apiKey", "required for this kind (e.g. env:OPENAI_API_KEY)"));
                }

                foreach (var (header, value) in doc.Headers ?? [])
                {
                    var headerPath = $"{path}.headers.{header}";
                    if (string.IsNullOrWhiteSpace(header) || ForwardedHeaders.IsBlocked(header) && !header.Equals("openai-organization", StringComparison.OrdinalIgnoreCase) && !header.Equals("openai-project", StringComparison.OrdinalIgnoreCase))
                    {
                        errors.Add(new(headerPath, "this header is set by the gateway and cannot be configured"));
                        continue;
                    }

                    if (context.ResolveSecret(value, headerPath) is { } secret)
                    {
                        headers.Add(new(header, secret));
                    }
                }
            }

            var connectTimeout = ParseDuration(doc.ConnectTimeout, path + ".connectTimeout", errors, positive: true) ?? TimeSpan.FromSeconds(5);
            var settings = factory?.CompileSettings(doc, path, context);
            var mediaFetch = MediaFetchPolicy.Compile(doc.MediaFetch, path + ".mediaFetch", errors, context.Warnings);
            if (doc.MediaFetch is not null && factory is not null && factory.TakesMediaUrls && (settings as SimulationSettings)?.TakesMediaUrls != false)
            {
                context.Warning(path + ".mediaFetch", $"has no effect: {factory.Kind} deployments take URLs as they are, so the gateway never fetches for them");
            }

            var probe = MergeProbe(defaultProbe, doc.Probe, path + ".probe", errors);
            if (name is null || factory is null)
            {
                continue;
            }

            result[name] = new ProviderEndpoint
            {
                Name = name,
                Kind = factory.Kind,
                Factory = factory,
                Tier = tier ?? factory.DefaultTier,
                BaseUri = baseUri,
                ApiKey = apiKey,
                Region = doc.Region,
                Tags = doc.Tags?.ToArray() ?? [],
                ExtraHeaders = [.. headers],
                ConnectTimeout = connectTimeout,
                Simulation = settings as SimulationSettings,
                Settings = settings,
                MediaFetch = mediaFetch,
                Probe = probe,
            };
        }

        return result;
    }

    private static Dictionary<string, Deployment> BuildDeployments(
        List<DeploymentDocument>? documents, Dictionary<string, ProviderEndpoint> providers, CircuitBreakerSettings defaultBreaker, TimeSpan defaultWindow, List<ConfigError> errors, List<ConfigError> warnings)
    {
        var result = new Dictionary<string, Deployment>(StringComparer.Ordinal);
        if (documents is null || documents.Count == 0)
        {
            errors.Add(new("deployments", "at least one deployment is required"));
            return result;
        }

        var firstSeen = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < documents.Count; i++)
        {
            var path = $"deployments[{i}]";
            var doc = documents[i];
            if (doc is null)
            {
                errors.Add(new(path, "empty entry"));
                continue;
            }

            var name = RequireName(doc.Name, path, "deployment", firstSeen, i, "deployments", errors);
            ProviderEndpoint? provider = null;
            if (string.IsNullOrWhiteSpace(doc.Provider))
            {
                errors.Add(new(path + ".provider", "required"));
            }
            else if (!providers.TryGetValue(doc.Provider, out provider))
            {
                errors.Add(new(path + ".provider", $"unknown provider '{doc.Provider}'"));
            }

            var model = doc.Model;
            if (string.IsNullOrWhiteSpace(model))
            {
                if (provider is { Factory.HasEndpoint: false })
                {
                    model = name;
                }
                else
                {
                    errors.Add(new(path + ".model", "required: the provider's own model id (for Azure, the deployment name)"));
                }
            }

            Positive(doc.ContextWindow, path + ".contextWindow", errors);
            Positive(doc.MaxOutputTokens, path + ".maxOutputTokens", errors);
            var known = KnownModelInheritance.Resolve(doc.KnownModel, model, path, errors);
            var contextWindow = known.ContextWindow(doc.ContextWindow);
            var maxOutputTokens = known.MaxOutputTokens(doc.MaxOutputTokens);
            if (contextWindow is { } window && maxOutputTokens is { } maxOutput && maxOutput > window)
            {
                errors.Add(new(path + ".maxOutputTokens", $"{maxOutput} is larger than the context window ({window})"));
            }

            Positive(doc.Capacity, path + ".capacity", errors);
            var metrics = Routing.Signals.LoadMetricsSettings.Build(doc.Metrics, provider?.Kind, path + ".metrics", errors);
            var requestLimit = ParseLimit(doc.Limits?.Rpm, "rpm", doc.Limits?.Requests, "requests", path + ".limits", errors);
            var tokenLimit = ParseLimit(doc.Limits?.Tpm, "tpm", doc.Limits?.Tokens, "tokens", path + ".limits", errors);
            var pricing = ParsePricing(doc.Pricing, path + ".pricing", errors);
            if (known.Pricing(doc.Pricing) is { } inherited && !ReferenceEquals(inherited, doc.Pricing))
            {
                // Checked as the file states it (above); the merge with the catalog's figures is compiled quietly.
                pricing = ParsePricing(inherited, path + ".pricing", []);
            }

            var capabilities = known.Capabilities(doc.Capabilities, provider?.Factory) ?? ParseCapabilities(doc.Capabilities, provider?.Factory, path + ".capabilities", errors);
            Positive(doc.DefaultMaxTokens, path + ".defaultMaxTokens", errors);
            var tokenizer = known.Tokenizer(doc.Tokenizer) ?? ParseTokenizer(doc.Tokenizer, model, path + ".tokenizer", errors);
            var breaker = MergeBreaker(defaultBreaker, doc.CircuitBreaker, path + ".circuitBreaker", errors);
            var firstToken = ParseDuration(doc.FirstTokenTimeout, path + ".firstTokenTimeout", errors, positive: true);
            var idle = ParseDuration(doc.IdleTimeout, path + ".idleTimeout", errors, positive: true);
            var latencyWindow = ParseDuration(doc.LatencyWindow, path + ".latencyWindow", errors, positive: true) ?? defaultWindow;
            var halfLife = Routing.Objectives.ObjectiveConfig.ParseHalfLife(doc.LatencyHalfLife, path + ".latencyHalfLife", errors);
            SimulationSettings? simulation = null;
            if (doc.Simulate is not null)
            {
                if (provider is not null && provider.Simulation is null)
                {
                    errors.Add(new(path + ".simulate", "only deployments of a simulated provider take simulate settings"));
                }
                else
                {
                    simulation = ParseSimulation(provider?.Simulation ?? SimulationDefaults.Settings, doc.Simulate, path + ".simulate", errors);
                }
            }

            // Client URLs (issue 22): the deployment's own mediaFetch replaces the provider's as a whole.
            var mediaFetch = doc.MediaFetch is null ? provider?.MediaFetch : MediaFetchPolicy.Compile(doc.MediaFetch, path + ".mediaFetch", errors, warnings);
            var takesMediaUrls = provider is not null && provider.Factory.TakesMediaUrls && (simulation ?? provider.Simulation)?.TakesMediaUrls != false;
            if (doc.MediaFetch is not null && takesMediaUrls)
            {
                warnings.Add(new(path + ".mediaFetch", $"has no effect: {provider!.Kind} deployments take URLs as they are, so the gateway never fetches for them"));
            }

            if (name is null || provider is null || model is null)
            {
                continue;
            }

            result[name] = new Deployment
            {
                Name = name,
                Index = i,
                Provider = provider,
                UpstreamModel = model,
                UpstreamModelJson = JsonSerializer.SerializeToUtf8Bytes(model, RoutingConfigJsonContext.Default.String),
                ContextWindow = contextWindow,
                MaxOutputTokens = maxOutputTokens,
                DefaultMaxTokens = Math.Min(doc.DefaultMaxTokens ?? 4096, maxOutputTokens ?? int.MaxValue),
                KnownModel = known.Known?.Id,
                FigureSources = known.Sources,
                Pricing = pricing,
                Capabilities = capabilities,
                Capacity = doc.Capacity,
                Metrics = metrics,
                RequestLimit = requestLimit,
                TokenLimit = tokenLimit,
                QuotaLearn = doc.Quotas?.Learn ?? true,
                Region = doc.Region ?? provider.Region,
                Tags = doc.Tags?.ToArray() ?? provider.Tags,
                Tokenizer = tokenizer,
                StreamUsage = doc.StreamUsage ?? true,
                FirstTokenTimeout = firstToken,
                IdleTimeout = idle,
                LatencyWindow = latencyWindow,
                LatencyHalfLife = halfLife,
                CircuitBreaker = breaker,
                Simulation = simulation ?? provider.Simulation,
                TakesMediaUrls = takesMediaUrls,
                MediaFetch = takesMediaUrls ? null : mediaFetch,
                IsReasoningModel = known.Known?.Has("reasoning") == true,
            };
        }

        return result;
    }

    private static List<ModelRoute> BuildRoutes(
        List<RouteDocument>? documents, Dictionary<string, Deployment> deployments, RoutingStrategyKind defaultStrategy, RouteResilience defaultResilience, List<ConfigError> errors, List<ConfigError> warnings)
    {
        var routes = new List<ModelRoute>();
        documents ??= [];
        var firstSeen = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < documents.Count; i++)
        {
            var path = $"routes[{i}]";
            var doc = documents[i];
            if (doc is null)
            {
                errors.Add(new(path, "empty entry"));
                continue;
            }

            var name = RequireName(doc.Name, path, "route", firstSeen, i, "routes", errors);
            var isAuto = name == AutoRoute && (doc.Targets is null || doc.Targets.Count == 0);
            var targets = new List<Deployment>();
            var weights = new List<double>();
            var targetRetries = new List<int?>();
            if (!isAuto && (doc.Targets is null || doc.Targets.Count == 0))
            {
                errors.Add(new(path + ".targets", "list at least one deployment"));
            }

            for (var j = 0; doc.Targets is not null && j < doc.Targets.Count; j++)
            {
                var target = doc.Targets[j];
                var targetPath = $"{path}.targets[{j}]";
                if (target?.Deployment is not { Length: > 0 } deploymentName)
                {
                    errors.Add(new(targetPath, "name a deployment"));
                    continue;
                }

                if (!deployments.TryGetValue(deploymentName, out var deployment))
                {
                    errors.Add(new(targetPath, $"unknown deployment '{deploymentName}'"));
                    continue;
                }

                if (targets.Contains(deployment))
                {
                    errors.Add(new(targetPath, $"deployment '{deploymentName}' is listed twice"));
                    continue;
                }

                if (target.Weight is { } weight && (weight <= 0 || double.IsNaN(weight)))
                {
                    errors.Add(new(targetPath + ".weight", "must be greater than 0"));
                }

                if (target.Retries is { } targetRetry && targetRetry is < 0 or > MaxRetries)
                {
                    errors.Add(new(targetPath + ".retries", $"must be between 0 and {MaxRetries}"));
                }

                targets.Add(deployment);
                weights.Add(target.Weight ?? 1);
                targetRetries.Add(target.Retries);
            }

            var slo = doc.Objective is not null
                ? Routing.Objectives.ObjectiveConfig.Parse(doc.Objective, doc.Slo is not null, path + ".objective", errors)
                : ParseSlo(doc.Slo, path + ".slo", errors);
            var strategy = ParseStrategy(doc.Strategy, path + ".strategy", errors)
                ?? (slo is not null || isAuto ? RoutingStrategyKind.Cost : defaultStrategy);
            if (strategy != RoutingStrategyKind.Weighted && doc.Targets?.Exists(t => t?.Weight is not null) == true)
            {
                warnings.Add(new(path + ".targets", "weights only matter with strategy: weighted"));
            }

            double costWeight = 0.5;
            double latencyWeight = 0.5;
            if (doc.Balance is not null)
            {
                costWeight = doc.Balance.Cost ?? 0;
                latencyWeight = doc.Balance.Latency ?? 0;
                if (costWeight < 0 || latencyWeight < 0 || costWeight + latencyWeight <= 0)
                {
                    errors.Add(new(path + ".balance", "weights must be 0 or more and not both 0"));
                }
            }

            var exploration = doc.Exploration ?? 0.05;
            if (exploration is < 0 or > 0.5)
            {
                errors.Add(new(path + ".exploration", "must be between 0 and 0.5"));
            }

            Positive(doc.ExpectedOutputTokens, path + ".expectedOutputTokens", errors);
            var (tiers, regions, tags) = ParseConstraints(doc.Constraints, path + ".constraints", errors);
            var resilience = MergeResilience(defaultResilience, doc.Resilience, path + ".resilience", errors, isRoute: true);
            if (name is null)
            {
                continue;
            }

            int[]? retries = targetRetries.Exists(r => r is not null) ? [.. targetRetries.Select(r => r ?? resilience.Retries)] : null;
            routes.Add(NewRoute(name, doc.Description, strategy, isAuto ? [] : [.. targets], [.. weights], slo, costWeight, latencyWeight, exploration,
                doc.ExpectedOutputTokens ?? 256, tiers, regions, tags, resilience, isAuto, isAuto ? deployments.Values : targets, retries));
            routes[^1].Cache = Caching.CacheSettings.Parse(doc.Cache, name, targets, deployments, path + ".cache", errors);
            routes[^1].Affinity = Routing.Affinity.AffinitySettings.Parse(doc.Affinity, name, path + ".affinity", errors);
        }

        if (!firstSeen.ContainsKey(AutoRoute) && deployments.Count > 0)
        {
            // "auto" is always there: every deployment is a candidate, cheapest fitting one first.
            routes.Add(NewRoute(AutoRoute, "Every deployment: the cheapest one that can serve the request.", RoutingStrategyKind.Cost, [], [], null, 0.5, 0.5, 0.05, 256,
                null, null, null, defaultResilience, isAuto: true, deployments.Values));
        }

        return routes;
    }

    private static ModelRoute NewRoute(
        string name, string? description, RoutingStrategyKind strategy, Deployment[] targets, double[] weights, SloSettings? slo, double costWeight, double latencyWeight,
        double exploration, int expectedOutput, DeploymentTier[]? tiers, string[]? regions, string[]? tags, RouteResilience resilience, bool isAuto, IEnumerable<Deployment> members,
        int[]? targetRetries = null)
    {
        int? maxContext = null;
        var capabilities = Capabilities.None;
        foreach (var deployment in members)
        {
            capabilities |= deployment.Capabilities;
            if (deployment.ContextWindow is { } window)
            {
                maxContext = Math.Max(maxContext ?? 0, window);
            }
        }

        return new ModelRoute
        {
            Name = name,
            Description = description,
            Strategy = strategy,
            StrategyName = KnownStrategies[(int)strategy],
            Targets = targets,
            Weights = weights,
            Slo = slo,
            CostWeight = costWeight,
            LatencyWeight = latencyWeight,
            Exploration = exploration,
            ExpectedOutputTokens = expectedOutput,
            AllowedTiers = tiers,
            AllowedRegions = regions,
            RequiredTags = tags,
            Resilience = resilience,
            IsAuto = isAuto,
            TargetRetries = targetRetries,
            MaxContextWindow = maxContext,
            Capabilities = capabilities,
        };
    }

    private static string? RequireName(string? name, string path, string what, Dictionary<string, int> firstSeen, int index, string list, List<ConfigError> errors)
    {
        if (string.IsNullOrWhiteSpace(name))
        {
            errors.Add(new(path + ".name", "required"));
            return null;
        }

        if (!NamePattern().IsMatch(name))
        {
            errors.Add(new(path + ".name", $"'{name}' may only use letters, digits and . _ - @ : /"));
            return null;
        }

        if (firstSeen.TryGetValue(name, out var first))
        {
            errors.Add(new(path + ".name", $"duplicate {what} '{name}' (first defined at {list}[{first}])"));
            return null;
        }

        firstSeen[name] = index;
        return name;
    }

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._@:/-]{0,127}$")]
    private static partial Regex NamePattern();

    private static DeploymentTier? ParseTier(string tier, string path, List<ConfigError> errors)
    {
        var index = Array.IndexOf(KnownTiers, tier);
        if (index < 0)
        {
            errors.Add(new(path, $"unknown tier '{tier}' (known: {string.Join(", ", KnownTiers)})"));
            return null;
        }

        return (DeploymentTier)index;
    }

    private static RoutingStrategyKind? ParseStrategy(string? strategy, string path, List<ConfigError> errors)
    {
        if (strategy is null)
        {
            return null;
        }

        var index = Array.IndexOf(KnownStrategies, strategy);
        if (index < 0)
        {
            errors.Add(new(path, $"unknown strategy '{strategy}' (known: {string.Join(", ", KnownStrategies)})"));
            return null;
        }

        return (RoutingStrategyKind)index;
    }

    private static Capabilities ParseCapabilities(List<string>? names, IProviderAdapterFactory? factory, string path, List<ConfigError> errors)
    {
        if (names is null)
        {
            return factory?.DefaultCapabilities ?? Capabilities.Chat;
        }

        var result = Capabilities.None;
        for (var i = 0; i < names.Count; i++)
        {
            var index = Array.IndexOf(KnownCapabilities, names[i]);
            if (index < 0)
            {
                errors.Add(new($"{path}[{i}]", $"unknown capability '{names[i]}' (known: {string.Join(", ", KnownCapabilities)})"));
                continue;
            }

            var capability = (Capabilities)(1 << index);
            if (factory is not null && (factory.Supports & capability) == 0)
            {
                errors.Add(new($"{path}[{i}]", $"{factory.Kind} deployments cannot serve '{names[i]}'"));
                continue;
            }

            result |= capability;
        }

        return result;
    }

    private static TokenizerKind ParseTokenizer(string? tokenizer, string? model, string path, List<ConfigError> errors)
    {
        if (tokenizer is null)
        {
            return GuessTokenizer(model);
        }

        var index = Array.IndexOf(KnownTokenizers, tokenizer);
        if (index < 0)
        {
            errors.Add(new(path, $"unknown tokenizer '{tokenizer}' (known: {string.Join(", ", KnownTokenizers)})"));
            return TokenizerKind.Other;
        }

        return (TokenizerKind)index;
    }

    /// <summary>OpenAI's newer families use o200k, older ones cl100k; anything else gets the cl100k count plus a margin.</summary>
    internal static TokenizerKind GuessTokenizer(string? model)
    {
        if (model is null)
        {
            return TokenizerKind.Other;
        }

        var lower = model.ToLowerInvariant();
        if (lower.StartsWith("gpt-4o", StringComparison.Ordinal) || lower.StartsWith("gpt-4.1", StringComparison.Ordinal) || lower.StartsWith("gpt-5", StringComparison.Ordinal)
            || lower.StartsWith("o1", StringComparison.Ordinal) || lower.StartsWith("o3", StringComparison.Ordinal) || lower.StartsWith("o4", StringComparison.Ordinal)
            || lower.StartsWith("chatgpt-4o", StringComparison.Ordinal))
        {
            return TokenizerKind.O200k;
        }

        if (lower.StartsWith("gpt-4", StringComparison.Ordinal) || lower.StartsWith("gpt-3.5", StringComparison.Ordinal) || lower.StartsWith("text-embedding", StringComparison.Ordinal))
        {
            return TokenizerKind.Cl100k;
        }

        return TokenizerKind.Other;
    }

    private static Pricing ParsePricing(PricingDocument? doc, string path, List<ConfigError> errors)
    {
        if (doc is null)
        {
            return default;
        }

        NonNegative(doc.Input, path + ".input", errors);
        NonNegative(doc.Output, path + ".output", errors);
        NonNegative(doc.CachedInput, path + ".cachedInput", errors);
        NonNegative(doc.CacheRead, path + ".cacheRead", errors);
        NonNegative(doc.CacheWrite, path + ".cacheWrite", errors);
        NonNegative(doc.Reasoning, path + ".reasoning", errors);
        NonNegative(doc.PerHour, path + ".perHour", errors);
        if (doc.CachedInput is not null && doc.CacheRead is not null)
        {
            errors.Add(new(path + ".cachedInput", "cachedInput and cacheRead are the same price; set one"));
        }

        var input = PerToken(doc.Input) ?? 0;
        var output = PerToken(doc.Output) ?? 0;
        return new Pricing(input, output, PerToken(doc.CacheRead ?? doc.CachedInput) ?? input, (double)(doc.PerHour ?? 0))
        {
            CacheWritePerToken = PerToken(doc.CacheWrite) ?? input,
            ReasoningPerToken = PerToken(doc.Reasoning) ?? output,
        };
    }

    private static double? PerToken(decimal? perMillion) => perMillion is { } value ? (double)value / 1_000_000 : null;

    private static SloSettings? ParseSlo(SloDocument? doc, string path, List<ConfigError> errors)
    {
        if (doc is null)
        {
            return null;
        }

        if ((doc.Ttft is null) == (doc.Duration is null))
        {
            errors.Add(new(path, "set exactly one of ttft or duration (e.g. ttft: 800ms)"));
            return null;
        }

        var metric = doc.Ttft is not null ? LatencyMetric.Ttft : LatencyMetric.Duration;
        var target = ParseDuration(doc.Ttft ?? doc.Duration, path + (doc.Ttft is not null ? ".ttft" : ".duration"), errors, positive: true);
        var percentile = doc.Percentile ?? 90;
        if (Array.IndexOf(KnownPercentiles, percentile) < 0)
        {
            errors.Add(new(path + ".percentile", "must be 50, 90, 95 or 99"));
        }

        return target is null ? null : new SloSettings(metric, percentile, target.Value, doc.AllowRequestOverride ?? true);
    }

    private static (DeploymentTier[]?, string[]?, string[]?) ParseConstraints(ConstraintsDocument? doc, string path, List<ConfigError> errors)
    {
        if (doc is null)
        {
            return (null, null, null);
        }

        DeploymentTier[]? tiers = null;
        if (doc.Tiers is not null)
        {
            var list = new List<DeploymentTier>();
            for (var i = 0; i < doc.Tiers.Count; i++)
            {
                if (ParseTier(doc.Tiers[i], $"{path}.tiers[{i}]", errors) is { } tier)
                {
                    list.Add(tier);
                }
            }

            tiers = [.. list];
        }

        return (tiers, doc.Regions?.ToArray(), doc.Tags?.ToArray());
    }

    private static RouteResilience MergeResilience(RouteResilience baseline, ResilienceDocument? doc, string path, List<ConfigError> errors, bool isRoute = false)
    {
        if (doc is null)
        {
            return baseline;
        }

        var maxAttempts = doc.MaxAttempts ?? baseline.MaxAttempts;
        if (maxAttempts is < 1 or > 10)
        {
            errors.Add(new(path + ".maxAttempts", "must be between 1 and 10"));
        }

        var hedging = baseline.Hedging;
        if (doc.Hedging is not null)
        {
            // Fields left out come from the defaults' hedging block, else from built-in values; enabled: false turns it off.
            var delay = ParseDuration(doc.Hedging.Delay, path + ".hedging.delay", errors, positive: false) ?? baseline.Hedging?.Delay ?? TimeSpan.FromSeconds(2);
            var attempts = doc.Hedging.MaxAttempts ?? baseline.Hedging?.MaxAttempts ?? 2;
            if (attempts is < 2 or > 5)
            {
                errors.Add(new(path + ".hedging.maxAttempts", "must be between 2 and 5"));
            }

            hedging = doc.Hedging.Enabled == false ? null : new HedgingSettings(delay, attempts);
        }

        var keepAlive = ParseDuration(doc.KeepAliveInterval, path + ".keepAliveInterval", errors, positive: false) ?? baseline.KeepAliveInterval;
        if (keepAlive > TimeSpan.Zero && keepAlive < TimeSpan.FromMilliseconds(100))
        {
            errors.Add(new(path + ".keepAliveInterval", "use 0s to turn keep-alives off, or at least 100ms"));
        }

        var backoff = ParseDuration(doc.Backoff, path + ".backoff", errors, positive: true) ?? baseline.Backoff;
        var maxBackoff = ParseDuration(doc.MaxBackoff, path + ".maxBackoff", errors, positive: true) ?? baseline.MaxBackoff;
        if (maxBackoff < backoff)
        {
            errors.Add(new(path + ".maxBackoff", "must not be shorter than backoff"));
        }

        var retries = doc.Retries ?? baseline.Retries;
        if (retries is < 0 or > MaxRetries)
        {
            errors.Add(new(path + ".retries", $"must be between 0 and {MaxRetries}"));
        }

        return new RouteResilience(
            maxAttempts,
            backoff,
            maxBackoff,
            ParseDuration(doc.FirstTokenTimeout, path + ".firstTokenTimeout", errors, positive: true) ?? baseline.FirstTokenTimeout,
            ParseDuration(doc.ResponseTimeout, path + ".responseTimeout", errors, positive: true) ?? baseline.ResponseTimeout,
            ParseDuration(doc.IdleTimeout, path + ".idleTimeout", errors, positive: true) ?? baseline.IdleTimeout,
            ParseDuration(doc.TotalTimeout, path + ".totalTimeout", errors, positive: true) ?? baseline.TotalTimeout,
            keepAlive,
            hedging,
            doc.Continuation ?? baseline.Continuation)
        {
            Retries = retries,
            MaxRetryAfter = ParseDuration(doc.MaxRetryAfter, path + ".maxRetryAfter", errors, positive: false) ?? baseline.MaxRetryAfter,
            ReasoningFirstTokenTimeout = ParseDuration(doc.ReasoningFirstTokenTimeout, path + ".reasoningFirstTokenTimeout", errors, positive: true) ?? baseline.ReasoningFirstTokenTimeout,

            // Only a route's own deadline reaches its reasoning models; one in defaults.resilience is meant for ordinary ones.
            FirstTokenTimeoutSet = isRoute && doc.FirstTokenTimeout is not null,
        };
    }

    private static ProbeSettings MergeProbe(ProbeSettings baseline, ProbeDocument? doc, string path, List<ConfigError> errors)
    {
        if (doc is null)
        {
            return baseline;
        }

        var interval = ParseDuration(doc.Interval, path + ".interval", errors, positive: true) ?? baseline.Interval;
        var jitter = ParseDuration(doc.Jitter, path + ".jitter", errors, positive: false) ?? baseline.Jitter;
        var timeout = ParseDuration(doc.Timeout, path + ".timeout", errors, positive: true) ?? baseline.Timeout;
        if (interval < TimeSpan.FromMilliseconds(500))
        {
            errors.Add(new(path + ".interval", "must be at least 500ms"));
        }

        if (jitter >= interval && doc.Jitter is not null)
        {
            errors.Add(new(path + ".jitter", "must be shorter than interval"));
        }

        return new ProbeSettings(doc.Enabled ?? baseline.Enabled, interval, jitter < interval ? jitter : interval / 5, timeout);
    }

    private static CircuitBreakerSettings MergeBreaker(CircuitBreakerSettings baseline, CircuitBreakerDocument? doc, string path, List<ConfigError> errors)
    {
        if (doc is null)
        {
            return baseline;
        }

        var ratio = doc.FailureRatio ?? baseline.FailureRatio;
        if (ratio is <= 0 or > 1)
        {
            errors.Add(new(path + ".failureRatio", "must be greater than 0 and at most 1"));
        }

        var throughput = doc.MinimumThroughput ?? baseline.MinimumThroughput;
        if (throughput < 2)
        {
            errors.Add(new(path + ".minimumThroughput", "must be at least 2"));
        }

        var consecutive = doc.ConsecutiveFailures ?? baseline.ConsecutiveFailures;
        if (consecutive is 1 or < 0)
        {
            errors.Add(new(path + ".consecutiveFailures", "must be 0 (off) or at least 2"));
        }

        var sampling = ParseDuration(doc.SamplingDuration, path + ".samplingDuration", errors, positive: true) ?? baseline.SamplingDuration;
        var breakDuration = ParseDuration(doc.BreakDuration, path + ".breakDuration", errors, positive: true) ?? baseline.BreakDuration;
        if (sampling < TimeSpan.FromMilliseconds(500))
        {
            errors.Add(new(path + ".samplingDuration", "must be at least 500ms"));
        }

        if (breakDuration < TimeSpan.FromMilliseconds(500))
        {
            errors.Add(new(path + ".breakDuration", "must be at least 500ms"));
        }

        var maxBreak = ParseDuration(doc.MaxBreakDuration, path + ".maxBreakDuration", errors, positive: true) ?? baseline.MaxBreakDuration;
        if (doc.MaxBreakDuration is not null && maxBreak < breakDuration)
        {
            errors.Add(new(path + ".maxBreakDuration", "must not be shorter than breakDuration"));
        }

        return new CircuitBreakerSettings(ratio, throughput, sampling, consecutive, breakDuration) { MaxBreakDuration = maxBreak < breakDuration ? breakDuration : maxBreak };
    }

    internal static SimulationSettings ParseSimulation(SimulationSettings baseline, SimulationDocument doc, string path, List<ConfigError> errors)
    {
        var ttft = ParseDuration(doc.Ttft, path + ".ttft", errors, positive: false) ?? baseline.Ttft;
        var tps = doc.TokensPerSecond ?? baseline.TokensPerSecond;
        if (tps < 0)
        {
            errors.Add(new(path + ".tokensPerSecond", "must be 0 (instant) or more"));
        }

        Positive(doc.OutputTokens, path + ".outputTokens", errors);
        var errorRate = doc.ErrorRate ?? baseline.ErrorRate;
        if (errorRate is < 0 or > 1)
        {
            errors.Add(new(path + ".errorRate", "must be between 0 and 1"));
        }

        var errorStatus = doc.ErrorStatus ?? baseline.ErrorStatus;
        if (errorStatus is < 400 or > 599)
        {
            errors.Add(new(path + ".errorStatus", "must be an HTTP error status (400-599)"));
        }

        Positive(doc.Concurrency, path + ".concurrency", errors);
        Positive(doc.EmbeddingDimensions, path + ".embeddingDimensions", errors);
        var outages = new List<OutageWindow>(baseline.Outages);
        for (var i = 0; doc.Outages is not null && i < doc.Outages.Count; i++)
        {
            var outage = doc.Outages[i];
            var outagePath = $"{path}.outages[{i}]";
            var status = outage.Status ?? 503;
            if (status is < 400 or > 599)
            {
                errors.Add(new(outagePath + ".status", "must be an HTTP error status (400-599)"));
            }
            if (outage.Every is not null || outage.For is not null)
            {
                var every = ParseDuration(outage.Every, outagePath + ".every", errors, positive: true);
                var length = ParseDuration(outage.For, outagePath + ".for", errors, positive: true);
                var offset = ParseDuration(outage.Offset, outagePath + ".offset", errors, positive: false) ?? TimeSpan.Zero;
                if (every is null || length is null)
                {
                    errors.Add(new(outagePath, "a repeating outage needs both every and for (e.g. every: 10m, for: 1m)"));
                }
                else
                {
                    outages.Add(new OutageWindow(null, null, every, length, offset, status));
                }
            }
            else
            {
                var from = ParseTime(outage.From, outagePath + ".from", errors);
                var until = ParseTime(outage.Until, outagePath + ".until", errors);
                if (from is null && until is null)
                {
                    errors.Add(new(outagePath, "set from/until, or every/for"));
                }
                else
                {
                    outages.Add(new OutageWindow(from, until, null, null, TimeSpan.Zero, status));
                }
            }
        }

        return new SimulationSettings(ttft, tps, doc.OutputTokens ?? baseline.OutputTokens, errorRate, errorStatus, doc.Concurrency ?? baseline.Concurrency,
            doc.EmbeddingDimensions ?? baseline.EmbeddingDimensions, [.. outages], doc.TakesMediaUrls ?? baseline.TakesMediaUrls);
    }

    private static DateTimeOffset? ParseTime(string? text, string path, List<ConfigError> errors)
    {
        if (text is null)
        {
            return null;
        }

        if (DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var value))
        {
            return value;
        }

        errors.Add(new(path, $"'{text}' is not a date and time (e.g. 2026-11-24T10:00:00Z)"));
        return null;
    }

    private static TimeSpan? ParseDuration(string? text, string path, List<ConfigError> errors, bool positive)
    {
        if (text is null)
        {
            return null;
        }

        if (!Durations.TryParse(text, out var value))
        {
            errors.Add(new(path, $"'{text}' is not a duration (e.g. 800ms, 30s, 5m, 1h)"));
            return null;
        }

        if (positive && value <= TimeSpan.Zero)
        {
            errors.Add(new(path, "must be longer than 0"));
            return null;
        }

        return value;
    }

    /// <summary>
    /// A provider limit in its own terms: a per-minute figure (<c>rpm</c>/<c>tpm</c>) or a windowed one such as
    /// <c>"60 per 10s"</c> (Azure OpenAI evaluates its quotas over 1 s or 10 s windows), never both.
    /// </summary>
    internal static WindowLimit? ParseLimit(int? perMinute, string perMinuteName, string? windowed, string windowedName, string path, List<ConfigError> errors)
    {
        if (perMinute is not null && windowed is not null)
        {
            errors.Add(new(path, $"set either {perMinuteName} or {windowedName}, not both ({perMinuteName}: {perMinute} is '{perMinute} per 1m')"));
            return null;
        }

        if (perMinute is { } count)
        {
            Positive(count, path + "." + perMinuteName, errors);
            return count > 0 ? new WindowLimit(count, 60) : null;
        }

        if (windowed is null)
        {
            return null;
        }

        var at = windowed.IndexOf(" per ", StringComparison.OrdinalIgnoreCase);
        if (at <= 0
            || !long.TryParse(windowed.AsSpan(0, at).Trim(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var limit)
            || limit <= 0
            || !Durations.TryParse(windowed[(at + 5)..], out var window))
        {
            errors.Add(new(path + "." + windowedName, $"'{windowed}' is not a limit: write '<count> per <window>', e.g. '60 per 10s' or '100000 per 1m'"));
            return null;
        }

        if (window < TimeSpan.FromSeconds(1) || window > TimeSpan.FromSeconds(WindowLimit.MaxWindowSeconds) || window.Ticks % TimeSpan.TicksPerSecond != 0)
        {
            errors.Add(new(path + "." + windowedName, $"the window of '{windowed}' must be whole seconds from 1s to 1h"));
            return null;
        }

        return new WindowLimit(limit, (int)window.TotalSeconds);
    }

    private static void Positive(long? value, string path, List<ConfigError> errors)
    {
        if (value is <= 0)
        {
            errors.Add(new(path, "must be greater than 0"));
        }
    }

    private static void NonNegative(decimal? value, string path, List<ConfigError> errors)
    {
        if (value is < 0)
        {
            errors.Add(new(path, "must not be negative"));
        }
    }
}

/// <summary>Live state per deployment name, kept across reloads.</summary>
internal sealed class DeploymentStateRegistry(TimeProvider timeProvider)
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, DeploymentState> _states = new(StringComparer.Ordinal);

    public IReadOnlyCollection<DeploymentState> All
    {
        get
        {
            lock (_gate)
            {
                return [.. _states.Values];
            }
        }
    }

    public DeploymentState Attach(Deployment deployment, ILoggerFactory loggerFactory)
    {
        lock (_gate)
        {
            var fingerprint = $"{deployment.Provider.Kind}|{deployment.Provider.BaseUri}|{deployment.UpstreamModel}";
            if (!_states.TryGetValue(deployment.Name, out var state))
            {
                state = new DeploymentState(deployment.Name, timeProvider, deployment.LatencyWindow);
                _states[deployment.Name] = state;
            }
            else if (state.Fingerprint != fingerprint)
            {
                // Same name, different endpoint or model: what we measured no longer applies.
                state.Latency.Reset();
            }

            state.Fingerprint = fingerprint;
            state.Quota.Learn = deployment.QuotaLearn;
            state.Latency.Window = deployment.LatencyWindow;
            state.Latency.Live.HalfLife = deployment.LatencyHalfLife;
            if (state.Circuit is null || state.Circuit.Settings != deployment.CircuitBreaker)
            {
                state.Circuit = new DeploymentCircuit(deployment.Name, deployment.CircuitBreaker, timeProvider, loggerFactory.CreateLogger("ModelGateway.Resilience.Circuit"));
            }

            return state;
        }
    }

    /// <summary>Forgets deployments that are no longer in the file.</summary>
    public void Retain(IEnumerable<string> names)
    {
        var keep = new HashSet<string>(names, StringComparer.Ordinal);
        lock (_gate)
        {
            foreach (var name in _states.Keys.ToArray())
            {
                if (!keep.Contains(name))
                {
                    _states.Remove(name);
                }
            }
        }
    }
}
