using BenchmarkDotNet.Attributes;
using ModelGateway.State;

namespace ModelGateway.Benchmarks;

/// <summary>
/// The in-memory per-key limit check: admit (RPM, TPM, concurrency and budgets, all set and never
/// reached) and settle, as every request from a key with limits does. The anonymous/no-limit path is
/// the baseline.
/// </summary>
[MemoryDiagnoser]
public class RateLimiterBenchmarks
{
    private readonly InMemoryRateLimiter _limiter = new(TimeProvider.System);

    private readonly CallerIdentity _limited = new()
    {
        KeyId = "key_bench",
        Name = "bench",
        RpmLimit = int.MaxValue,
        TpmLimit = long.MaxValue / 4,
        MaxParallelRequests = int.MaxValue,
        DailyBudgetUsd = 1e12,
        MonthlyBudgetUsd = 1e12,
    };

    [Benchmark(Baseline = true)]
    public async ValueTask<bool> AdmitWithoutLimits()
    {
        var admission = await _limiter.AdmitAsync(CallerIdentity.Anonymous, "req_bench", 120, 0.0001, CancellationToken.None).ConfigureAwait(false);
        return admission.Allowed;
    }

    [Benchmark]
    public async ValueTask<bool> AdmitAndSettleWithLimits()
    {
        var admission = await _limiter.AdmitAsync(_limited, "req_bench", 120, 0.0001, CancellationToken.None).ConfigureAwait(false);
        await _limiter.SettleAsync(_limited, admission, 100, 0.00008).ConfigureAwait(false);
        return admission.Allowed;
    }
}
