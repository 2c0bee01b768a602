using System.Globalization;

namespace ModelGateway.Bench.StreamSoak;

/// <summary>Options shared by both commands; each reads the ones it needs.</summary>
internal sealed record Options
{
    public required Uri Url { get; init; }
    public string Model { get; init; } = "gpt-4o-mini";
    public int Streams { get; init; } = 1000;
    public int RampPerSecond { get; init; } = 2000;
    public int TimeoutSeconds { get; init; } = 120;
    public int Requests { get; init; } = 2000;
    public int Warmup { get; init; } = 200;

    /// <summary>A gateway API key, sent as <c>Authorization: Bearer</c>; null sends none.</summary>
    public string? ApiKey { get; init; }
}

/// <summary>Parses <c>--name value</c> pairs; anything unknown is an error, so a typo never runs a different test.</summary>
internal static class CommandLine
{
    public const string Usage =
        "usage: StreamSoak soak --url URL --streams N [--model M] [--key K] [--ramp-per-second R] [--timeout-seconds T]\n" +
        "       StreamSoak ttfb --url URL [--requests N] [--warmup N] [--model M] [--key K]";

    public static bool TryParse(string[] args, out Options options, out string error)
    {
        options = null!;
        error = string.Empty;
        Uri? url = null;
        var parsed = new Options { Url = new Uri("http://127.0.0.1/") };
        for (var i = 0; i < args.Length; i += 2)
        {
            if (i + 1 >= args.Length)
            {
                error = $"{args[i]} needs a value";
                return false;
            }

            var value = args[i + 1];
            switch (args[i])
            {
                case "--url" when Uri.TryCreate(value, UriKind.Absolute, out var u):
                    url = u;
                    break;
                case "--model":
                    parsed = parsed with { Model = value };
                    break;
                case "--key":
                    parsed = parsed with { ApiKey = value };
                    break;
                case "--streams" when TryPositive(value, out var n):
                    parsed = parsed with { Streams = n };
                    break;
                case "--ramp-per-second" when TryPositive(value, out var n):
                    parsed = parsed with { RampPerSecond = n };
                    break;
                case "--timeout-seconds" when TryPositive(value, out var n):
                    parsed = parsed with { TimeoutSeconds = n };
                    break;
                case "--requests" when TryPositive(value, out var n):
                    parsed = parsed with { Requests = n };
                    break;
                case "--warmup" when int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n):
                    parsed = parsed with { Warmup = n };
                    break;
                default:
                    error = $"bad argument '{args[i]} {value}'";
                    return false;
            }
        }

        if (url is null)
        {
            error = "--url is required";
            return false;
        }

        options = parsed with { Url = url };
        return true;
    }

    private static bool TryPositive(string text, out int value) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value) && value > 0;
}
