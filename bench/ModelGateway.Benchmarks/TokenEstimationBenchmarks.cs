using BenchmarkDotNet.Attributes;
using ModelGateway.Configuration;
using ModelGateway.Forwarding;
using ModelGateway.Routing;

namespace ModelGateway.Benchmarks;

/// <summary>
/// Input-token counting: the cheap figures every request gets (estimate and upper bound, from the
/// parse) against the exact tokenizer count that runs only near a context window.
/// </summary>
[MemoryDiagnoser]
public class TokenEstimationBenchmarks
{
    private readonly TokenEstimator _estimator = new();
    private GatewayRequest _request = null!;

    /// <summary>About 250 bytes (a one-line chat) and 16 KB (a long conversation).</summary>
    [Params(250, 16_384)]
    public int BodyBytes { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _estimator.WarmUp(new HashSet<TokenizerKind> { TokenizerKind.O200k, TokenizerKind.Cl100k });
        _request = BenchDeployments.Request(BodyBytes <= 300 ? BenchDeployments.ChatBody : BenchPayloads.ChatRequest(BodyBytes));
    }

    [Benchmark(Baseline = true)]
    public long CheapEstimateAndBound() => TokenEstimator.Estimate(_request.Info) + TokenEstimator.UpperBound(_request.Info);

    [Benchmark]
    public long ExactO200k()
    {
        _request.SetExactTokens(TokenizerKind.O200k, -1); // the count is cached per request: measure the work, not the cache
        return _estimator.Count(_request, TokenizerKind.O200k);
    }

    [Benchmark]
    public long ExactCl100k()
    {
        _request.SetExactTokens(TokenizerKind.Cl100k, -1);
        return _estimator.Count(_request, TokenizerKind.Cl100k);
    }
}
