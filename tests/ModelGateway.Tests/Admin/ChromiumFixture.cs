using Microsoft.Playwright;

namespace ModelGateway.Tests.Admin;

/// <summary>
/// One headless Chromium for a test class, driven by Playwright. It is the system's Chromium
/// (<c>./test.sh</c> installs the Debian package): Playwright never downloads a browser here.
/// </summary>
public sealed class ChromiumFixture : IAsyncLifetime
{
    public const string ExecutablePath = "/usr/bin/chromium";

    // No sandbox (tests run as root in containers), no GPU, and nothing that phones home on start.
    private static readonly string[] Args =
    [
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
    ];

    private IPlaywright? _playwright;

    public IBrowser Browser { get; private set; } = null!;

    /// <summary><c>TestResults/screenshots</c> under the repository root, which CI keeps as an artifact.</summary>
    public static string ScreenshotDirectory { get; } = FindScreenshotDirectory();

    public async Task InitializeAsync()
    {
        if (!File.Exists(ExecutablePath))
        {
            throw new InvalidOperationException($"The ops page tests need Chromium at {ExecutablePath}; ./test.sh installs it (apt package 'chromium').");
        }

        // Polls run every 2 s and a circuit needs a few requests to open: give every assertion room on a busy CI machine.
        Assertions.SetDefaultExpectTimeout(20_000);
        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ExecutablePath,
            Headless = true,
            Args = Args,
        });
    }

    public async Task DisposeAsync()
    {
        if (Browser is not null)
        {
            await Browser.DisposeAsync();
        }

        _playwright?.Dispose();
    }

    private static string FindScreenshotDirectory()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "ModelGateway.sln")))
        {
            directory = directory.Parent;
        }

        var root = directory?.FullName ?? AppContext.BaseDirectory;
        var screenshots = Path.Combine(root, "TestResults", "screenshots");
        Directory.CreateDirectory(screenshots);
        return screenshots;
    }
}
