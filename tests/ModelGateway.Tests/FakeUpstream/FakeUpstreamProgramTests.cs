using System.Diagnostics;
using System.Text.RegularExpressions;
using ModelGateway.FakeUpstream;
using static ModelGateway.Tests.FakeUpstream.FakeUpstreamTestKit;

namespace ModelGateway.Tests.FakeUpstream;

/// <summary>The fake run as a program, the way the load harness starts it.</summary>
public sealed partial class FakeUpstreamProgramTests
{
    [GeneratedRegex(@"^listening on http://127\.0\.0\.1:(\d+)$")]
    private static partial Regex ListeningLine();

    [Fact]
    public async Task Program_prints_its_address_serves_and_exits_on_sigterm()
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS())
        {
            return; // SIGTERM is a POSIX signal
        }

        var dll = typeof(FakeUpstreamServer).Assembly.Location;
        var start = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { dll, "--fast", "--chunks", "3", "--chunk-delay-ms", "1", "--api-key", "sk-load" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var process = Process.Start(start)!;
        try
        {
            using var timeout = new CancellationTokenSource(Generous);
            var line = await process.StandardOutput.ReadLineAsync(timeout.Token);
            var match = ListeningLine().Match(line ?? string.Empty);
            Assert.True(match.Success, $"unexpected first line '{line}'");

            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{match.Groups[1].Value}/") };
            using var response = await SendAsync(http, Post("/v1/chat/completions", ChatBody(stream: true), bearer: "sk-load"));
            using var sse = await SseReader.OpenAsync(response);
            var events = await sse.ReadAllAsync();
            Assert.Equal(1 + 3 + 1 + 1, events.Count);

            using var kill = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            await kill.WaitForExitAsync(timeout.Token);
            await process.WaitForExitAsync(timeout.Token);
            Assert.Equal(0, process.ExitCode);
            Assert.Null(await process.StandardOutput.ReadLineAsync(timeout.Token)); // exactly one line
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill();
            }
        }
    }

    [Fact]
    public async Task Program_rejects_unknown_arguments()
    {
        var dll = typeof(FakeUpstreamServer).Assembly.Location;
        var start = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { dll, "--chunks", "many" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var process = Process.Start(start)!;
        using var timeout = new CancellationTokenSource(Generous);
        var error = await process.StandardError.ReadToEndAsync(timeout.Token);
        await process.WaitForExitAsync(timeout.Token);

        Assert.Equal(2, process.ExitCode);
        Assert.Contains("--chunks: 'many' is not a valid number", error, StringComparison.Ordinal);
    }
}
