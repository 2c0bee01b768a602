using System.Globalization;
using System.Runtime.InteropServices;

namespace ModelGateway.FakeUpstream;

/// <summary>
/// Runs the fake as a process for the load harness:
/// <c>[--port N] [--fast] [--chunks N] [--chunk-delay-ms N] [--first-chunk-delay-ms N] [--api-key KEY] [--slots N]</c>.
/// </summary>
internal static class Program
{
    private const string Usage =
        "usage: ModelGateway.FakeUpstream [--port N] [--fast] [--chunks N] [--chunk-delay-ms N] [--first-chunk-delay-ms N] [--api-key KEY] [--slots N]";

    public static async Task<int> Main(string[] args)
    {
        if (!TryParse(args, out var options, out var behavior, out var error))
        {
            await Console.Error.WriteLineAsync(error).ConfigureAwait(false);
            await Console.Error.WriteLineAsync(Usage).ConfigureAwait(false);
            return 2;
        }

        var stop = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnSignal(PosixSignalContext context)
        {
            context.Cancel = true; // we shut down ourselves, cleanly
            stop.TrySetResult();
        }

        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);

        var server = await FakeUpstreamServer.StartAsync(options).ConfigureAwait(false);
        await using (server.ConfigureAwait(false))
        {
            server.DefaultBehavior = behavior;
            await Console.Out.WriteLineAsync($"listening on http://127.0.0.1:{server.Port}").ConfigureAwait(false);
            await Console.Out.FlushAsync().ConfigureAwait(false);
            await stop.Task.ConfigureAwait(false);
        }

        return 0;
    }

    private static bool TryParse(string[] args, out FakeUpstreamOptions options, out UpstreamBehavior behavior, out string error)
    {
        var port = 0;
        var fast = false;
        int? slots = null;
        string? apiKey = null;
        behavior = new UpstreamBehavior();
        options = new FakeUpstreamOptions();
        error = string.Empty;

        for (var i = 0; i < args.Length; i++)
        {
            var name = args[i];
            if (name == "--fast")
            {
                fast = true;
                continue;
            }

            if (i + 1 >= args.Length)
            {
                error = name.StartsWith("--", StringComparison.Ordinal) ? $"{name} needs a value" : $"unknown argument '{name}'";
                return false;
            }

            var value = args[++i];
            switch (name)
            {
                case "--api-key":
                    apiKey = value;
                    continue;
                case "--port" when TryInt(value, 0, 65535, out var parsedPort):
                    port = parsedPort;
                    continue;
                case "--chunks" when TryInt(value, 1, 100_000, out var chunks):
                    behavior = behavior with { ChunkCount = chunks };
                    continue;
                case "--chunk-delay-ms" when TryInt(value, 0, int.MaxValue, out var chunkDelay):
                    behavior = behavior with { ChunkDelay = TimeSpan.FromMilliseconds(chunkDelay) };
                    continue;
                case "--first-chunk-delay-ms" when TryInt(value, 0, int.MaxValue, out var firstDelay):
                    behavior = behavior with { FirstChunkDelay = TimeSpan.FromMilliseconds(firstDelay) };
                    continue;
                case "--slots" when TryInt(value, 1, 100_000, out var parsedSlots):
                    slots = parsedSlots;
                    continue;
                case "--port" or "--slots" or "--chunks" or "--chunk-delay-ms" or "--first-chunk-delay-ms":
                    error = $"{name}: '{value}' is not a valid number";
                    return false;
                default:
                    error = $"unknown argument '{name}'";
                    return false;
            }
        }

        options = new FakeUpstreamOptions { Port = port, FastMode = fast, ExpectedApiKey = apiKey, Slots = slots };
        return true;
    }

    private static bool TryInt(string text, int min, int max, out int value) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value) && value >= min && value <= max;
}
