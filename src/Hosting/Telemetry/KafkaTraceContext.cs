using System.Diagnostics;
using System.Text;
using Confluent.Kafka;

namespace Realtime.Hosting.Telemetry;

/// <summary>
/// W3C trace context in Kafka record headers (<c>traceparent</c>, <c>tracestate</c>), so one trace
/// follows an event from its publisher through the fanout to the socket write.
/// </summary>
public static class KafkaTraceContext
{
    public const string TraceParentHeader = "traceparent";
    public const string TraceStateHeader = "tracestate";

    /// <summary>Adds the activity's context to the headers (replacing any carried over).</summary>
    public static void Inject(Activity? activity, Headers headers)
    {
        ArgumentNullException.ThrowIfNull(headers);
        if (activity is null)
        {
            return;
        }

        headers.Remove(TraceParentHeader);
        headers.Remove(TraceStateHeader);
        headers.Add(TraceParentHeader, Encoding.ASCII.GetBytes(activity.Id!));
        if (!string.IsNullOrEmpty(activity.TraceStateString))
        {
            headers.Add(TraceStateHeader, Encoding.ASCII.GetBytes(activity.TraceStateString));
        }
    }

    /// <summary>The parent context carried by a record, if any.</summary>
    public static ActivityContext Extract(Headers? headers)
    {
        var (parent, state) = Read(headers);
        return Parse(parent, state);
    }

    /// <summary>The remote parent context that W3C trace values describe; default when absent or invalid.</summary>
    public static ActivityContext Parse(string? traceParent, string? traceState) =>
        !string.IsNullOrEmpty(traceParent) && ActivityContext.TryParse(traceParent, string.IsNullOrEmpty(traceState) ? null : traceState, isRemote: true, out var context) ? context : default;

    /// <summary>The W3C trace headers a record carries, as they are (null when absent).</summary>
    public static (string? TraceParent, string? TraceState) Read(Headers? headers)
    {
        if (headers is null || !headers.TryGetLastBytes(TraceParentHeader, out var parent))
        {
            return (null, null);
        }

        return (Encoding.ASCII.GetString(parent), headers.TryGetLastBytes(TraceStateHeader, out var state) ? Encoding.ASCII.GetString(state) : null);
    }
}
