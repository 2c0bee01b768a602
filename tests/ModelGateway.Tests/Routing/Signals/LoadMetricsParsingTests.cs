using ModelGateway.Routing.Signals;

namespace ModelGateway.Tests.Routing.Signals;

/// <summary>The load figures of vLLM, TGI and SGLang are read from their Prometheus text as those servers write it.</summary>
public sealed class LoadMetricsParsingTests
{
    [Fact]
    public void Vllm_counts_are_summed_across_models_and_the_fullest_kv_cache_wins()
    {
        const string text = """
            # HELP vllm:num_requests_waiting Number of requests waiting to be processed.
            # TYPE vllm:num_requests_waiting gauge
            vllm:num_requests_waiting{engine="0",model_name="llama"} 3.0
            vllm:num_requests_waiting{engine="0",model_name="qwen, {the big one}"} 9.0
            vllm:num_requests_running{engine="0",model_name="llama"} 16.0
            vllm:kv_cache_usage_perc{engine="0",model_name="llama"} 0.42
            vllm:kv_cache_usage_perc{engine="0",model_name="qwen"} 0.97
            vllm:prompt_tokens_total{model_name="llama"} 123456.0
            """;

        Assert.True(PrometheusLoadParser.TryParse(text, 1000, out var reading));

        Assert.Equal(12, reading.Waiting);
        Assert.Equal(16, reading.Running);
        Assert.Equal(0.97, reading.KvUsage);
    }

    [Fact]
    public void Older_vllm_tgi_and_sglang_names_are_read_too()
    {
        Assert.True(PrometheusLoadParser.TryParse("vllm:gpu_cache_usage_perc 0.99\nvllm:num_requests_waiting 0\n", 0, out var old));
        Assert.Equal(0.99, old.KvUsage);
        Assert.True(PrometheusLoadParser.TryParse("tgi_queue_size 4\ntgi_batch_current_size 8\n", 0, out var tgi));
        Assert.Equal((4d, 8d, (double?)null), (tgi.Waiting, tgi.Running, tgi.KvUsage));
        Assert.True(PrometheusLoadParser.TryParse("sglang:num_queue_reqs{model_name=\"m\"} 2 1700000000000\nsglang:num_running_reqs{model_name=\"m\"} 5\nsglang:token_usage{model_name=\"m\"} 0.5\n", 0, out var sglang));
        Assert.Equal((2d, 5d, (double?)0.5), (sglang.Waiting, sglang.Running, sglang.KvUsage));
    }

    [Fact]
    public void A_page_without_any_load_metric_is_not_a_reading()
    {
        Assert.False(PrometheusLoadParser.TryParse("# just a comment\nprocess_cpu_seconds_total 12.5\nnot a metric line\n", 0, out _));
    }

    [Fact]
    public void A_reading_queues_when_more_wait_than_allowed_or_the_kv_cache_is_full()
    {
        var settings = new LoadMetricsSettings(new Uri("http://vllm:8000/metrics"), TimeSpan.FromSeconds(2), MaxQueue: 2);
        Assert.False(LoadSignal.IsQueueing(new LoadReading(2, 16, 0.5, 0), settings));
        Assert.True(LoadSignal.IsQueueing(new LoadReading(3, 16, 0.5, 0), settings));
        Assert.True(LoadSignal.IsQueueing(new LoadReading(0, 16, 0.98, 0), settings));
    }
}
