using Microsoft.Extensions.Time.Testing;
using ModelGateway.Routing.Objectives;

namespace ModelGateway.Tests.Routing.Objectives;

/// <summary>The decayed TTFT estimate follows a deployment within seconds and forgets a bad spell a few half-lives later.</summary>
public sealed class LiveTtftTests
{
    private readonly FakeTimeProvider _clock = new();

    [Fact]
    public void A_slow_spell_weighs_less_every_half_life_however_busy_it_was()
    {
        var live = new LiveTtft(_clock, TimeSpan.FromSeconds(10));
        for (var i = 0; i < 20; i++)
        {
            live.Record(TimeSpan.FromMilliseconds(2300));
            _clock.Advance(TimeSpan.FromMilliseconds(50));
        }

        Assert.True(live.DistributionAt(_clock.GetTimestamp()).Quantile(99) > 2000);

        // Recovered: one probe every 5 s. After 50 s the 20 slow samples weigh 20/2^5, less than the probes.
        for (var i = 0; i < 10; i++)
        {
            _clock.Advance(TimeSpan.FromSeconds(5));
            live.Record(TimeSpan.FromMilliseconds(120));
        }

        var distribution = live.DistributionAt(_clock.GetTimestamp());
        Assert.True(distribution.Quantile(50) < 300, $"p50 {distribution.Quantile(50)}");
        Assert.InRange(distribution.Weight, 3, 5);
    }

    [Fact]
    public void A_restart_after_two_good_probes_drops_the_slow_spell_at_once()
    {
        var live = new LiveTtft(_clock, TimeSpan.FromSeconds(10));
        for (var i = 0; i < 200; i++)
        {
            live.Record(TimeSpan.FromMilliseconds(2300));
        }

        live.Restart(TimeSpan.FromMilliseconds(110), TimeSpan.FromMilliseconds(130));

        var distribution = live.DistributionAt(_clock.GetTimestamp());
        Assert.InRange(distribution.Quantile(99), 100, 200);
        Assert.Equal(2, distribution.Weight, 3);
    }

    [Fact]
    public void A_bimodal_spread_gives_its_percentiles_and_its_share_over_a_target_as_they_are()
    {
        var live = new LiveTtft(_clock, TimeSpan.FromSeconds(10));
        for (var i = 0; i < 100; i++)
        {
            live.Record(TimeSpan.FromMilliseconds(i % 10 == 0 ? 900 : 200));
        }

        var distribution = live.DistributionAt(_clock.GetTimestamp());
        Assert.InRange(distribution.Quantile(50), 180, 230);
        Assert.InRange(distribution.Quantile(99), 850, 1000);
        Assert.Equal(0.1, distribution.MissProbability(500), 3);
    }

    [Fact]
    public void An_attempt_waiting_for_its_first_byte_counts_as_late_while_it_waits_and_not_after()
    {
        var live = new LiveTtft(_clock, TimeSpan.FromSeconds(10));
        var slot = live.BeginWait(_clock.GetTimestamp());
        _clock.Advance(TimeSpan.FromMilliseconds(1500));
        Assert.Equal(1500, live.OldestWaitMs(_clock.GetTimestamp()), 1);

        live.EndWait(slot);
        Assert.Equal(0, live.OldestWaitMs(_clock.GetTimestamp()));
    }

    [Fact]
    public void Without_samples_for_several_half_lives_the_estimate_is_unknown_again()
    {
        var live = new LiveTtft(_clock, TimeSpan.FromSeconds(1));
        live.Record(TimeSpan.FromMilliseconds(5000));
        Assert.True(live.DistributionAt(_clock.GetTimestamp()).IsKnown);

        _clock.Advance(TimeSpan.FromSeconds(2));
        Assert.False(live.DistributionAt(_clock.GetTimestamp()).IsKnown);
        Assert.True(double.IsNaN(live.DistributionAt(_clock.GetTimestamp()).Quantile(99)));
    }
}
