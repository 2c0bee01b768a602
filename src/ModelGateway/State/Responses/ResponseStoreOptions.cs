using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace ModelGateway.State.Responses;

/// <summary>The Responses API's stored responses (section <c>Responses</c>).</summary>
public sealed class ResponseStoreOptions
{
    public const string Section = "Responses";

    /// <summary>How long a stored response can be continued (<c>previous_response_id</c>) or read back.</summary>
    [Range(typeof(TimeSpan), "00:00:10", "90.00:00:00")]
    public TimeSpan StoreTtl { get; set; } = TimeSpan.FromDays(1);

    /// <summary>
    /// In-memory store only: the most bytes stored responses may take in this process; the oldest are
    /// dropped first past it. With Redis, Redis's own memory holds them (and its TTLs expire them).
    /// </summary>
    [Range(1L, 64L * 1024 * 1024 * 1024)]
    public long MemoryLimitBytes { get; set; } = 256L * 1024 * 1024;
}

[OptionsValidator]
internal sealed partial class ResponseStoreOptionsValidator : IValidateOptions<ResponseStoreOptions>;
