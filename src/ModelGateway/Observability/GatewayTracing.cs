using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Options;
using ModelGateway.Canonical;
using ModelGateway.Configuration;
using ModelGateway.Forwarding;
using ModelGateway.Resilience;

namespace ModelGateway.Observability;

/// <summary>
/// Spans for upstream attempts, one per attempt under the request's server span, with OpenTelemetry
/// GenAI attributes (<c>gen_ai.*</c>) plus the routing decision and attempt number. The span is
/// current while the attempt is sent, so <c>traceparent</c> reaches the provider. Prompts and
/// completions are recorded only when <c>Observability:CaptureContent</c> is on.
/// </summary>
internal sealed class GatewayTracing(IOptions<ObservabilityOptions> options)
{
    public const string SourceName = "ModelGateway";

    private static readonly ActivitySource Source = new(SourceName);

    public bool CaptureContent { get; } = options.Value.CaptureContent;

    /// <summary>Starts the span of one attempt; null when nobody listens.</summary>
    public Activity? StartAttempt(GatewayRequest request, Deployment deployment, int attempt, bool continuation)
    {
        if (!Source.HasListeners())
        {
            return null;
        }

        var operation = GatewayMetrics.Operation(request.Operation);
        var activity = Source.StartActivity($"{operation} {deployment.UpstreamModel}", ActivityKind.Client);
        if (activity is null)
        {
            return null;
        }

        activity.SetTag("gen_ai.operation.name", operation);
        activity.SetTag("gen_ai.provider.name", deployment.Provider.Factory.SemanticName);
        activity.SetTag("gen_ai.request.model", deployment.UpstreamModel);
        if (request.Info.MaxTokens is { } maxTokens)
        {
            activity.SetTag("gen_ai.request.max_tokens", maxTokens);
        }

        if (deployment.Provider.BaseUri is { } uri)
        {
            activity.SetTag("server.address", uri.Host);
            activity.SetTag("server.port", uri.Port);
        }

        activity.SetTag("modelgateway.route", request.Route?.Name);
        activity.SetTag("modelgateway.deployment", deployment.Name);
        activity.SetTag("modelgateway.provider", deployment.Provider.Name);
        activity.SetTag("modelgateway.tier", deployment.Tier.ToString().ToLowerInvariant());
        activity.SetTag("modelgateway.attempt", attempt);
        activity.SetTag("modelgateway.route.reason", request.Decision?.ReasonText);
        activity.SetTag("modelgateway.stream", request.Info.Stream);
        if (continuation)
        {
            activity.SetTag("modelgateway.continuation", true);
        }

        if (CaptureContent)
        {
            activity.SetTag("gen_ai.input.messages", System.Text.Encoding.UTF8.GetString(request.Body));
        }

        return activity;
    }

    /// <summary>Ends a failed attempt's span.</summary>
    public static void Failed(Activity? activity, AttemptOutcome outcome)
    {
        if (activity is null)
        {
            return;
        }

        activity.SetTag("error.type", outcome.Failure.ToString());
        if (outcome.UpstreamStatus > 0)
        {
            activity.SetTag("http.response.status_code", outcome.UpstreamStatus);
        }

        activity.SetStatus(ActivityStatusCode.Error, outcome.Detail);
        activity.Stop();
    }

    /// <summary>Ends the span of a stream that broke after its first byte.</summary>
    public static void Broken(Activity? activity, string reason)
    {
        if (activity is null)
        {
            return;
        }

        activity.SetTag("error.type", "stream_interrupted");
        activity.SetStatus(ActivityStatusCode.Error, reason);
        activity.Stop();
    }

    /// <summary>Ends the winning attempt's span once its answer has been relayed, with what it used.</summary>
    public void Completed(Activity? activity, GatewayRequest request, string? output)
    {
        if (activity is null)
        {
            return;
        }

        if (request.ServedBy is { } deployment)
        {
            activity.SetTag("gen_ai.response.model", deployment.UpstreamModel);
        }

        activity.SetTag("gen_ai.usage.input_tokens", request.Usage.Input);
        activity.SetTag("gen_ai.usage.output_tokens", request.Usage.Output);
        if (request.FinishReason != FinishReason.None)
        {
            activity.SetTag("gen_ai.response.finish_reasons", new[] { FinishReasonName(request.FinishReason) });
        }

        activity.SetTag("modelgateway.cost_usd", request.Cost.ToString("0.########", CultureInfo.InvariantCulture));
        if (CaptureContent && output is not null)
        {
            activity.SetTag("gen_ai.output.messages", output);
        }

        if (!request.StreamCompleted)
        {
            activity.SetTag("error.type", request.ErrorCode ?? "stream_interrupted");
            activity.SetStatus(ActivityStatusCode.Error);
        }

        activity.Stop();
    }

    /// <summary>Puts the request-level outcome on the server span ASP.NET Core created.</summary>
    public static void TagServerSpan(GatewayRequest request)
    {
        var server = request.HttpContext.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpActivityFeature>()?.Activity;
        if (server is null || !server.IsAllDataRequested)
        {
            return;
        }

        server.SetTag("modelgateway.request_id", request.RequestId);
        server.SetTag("modelgateway.key", request.Caller.Name);
        server.SetTag("modelgateway.route", request.Route?.Name);
        server.SetTag("modelgateway.deployment", request.ServedBy?.Name);
        server.SetTag("modelgateway.attempts", request.Attempts.Count);
        server.SetTag("gen_ai.usage.input_tokens", request.Usage.Input);
        server.SetTag("gen_ai.usage.output_tokens", request.Usage.Output);
    }

    public static string FinishReasonName(FinishReason reason) => reason switch
    {
        FinishReason.Stop => "stop",
        FinishReason.Length => "length",
        FinishReason.ToolCalls => "tool_calls",
        FinishReason.ContentFilter => "content_filter",
        FinishReason.FunctionCall => "function_call",
        _ => "other",
    };
}
