using Google.Protobuf;
using Realtime.Contracts.V1;
using Realtime.Gateway.Auth;

namespace Realtime.Gateway.Publishing;

/// <summary>Builds the envelope of a publish the same way for every entry point.</summary>
internal sealed class EventFactory(NodeIdentity node, TimeProvider time)
{
    public const string JsonContentType = "application/json";

    public EventEnvelope Create(
        ClientIdentity publisher,
        PublishOrigin origin,
        string channel,
        string eventType,
        ByteString payload,
        string? contentType,
        uint schemaVersion,
        string? idempotencyKey,
        bool transient = false)
    {
        var now = time.GetUtcNow();
        var trace = System.Diagnostics.Activity.Current is { } activity
            ? new TraceContext { Traceparent = activity.Id ?? string.Empty, Tracestate = activity.TraceStateString ?? string.Empty }
            : null;
        return new EventEnvelope
        {
            Trace = trace,
            // Version 7: time-ordered, so ids sort roughly by publish time.
            EventId = Guid.CreateVersion7(now).ToString("N"),
            Channel = channel,
            EventType = eventType,
            Payload = payload,
            ContentType = string.IsNullOrEmpty(contentType) ? JsonContentType : contentType,
            SchemaVersion = schemaVersion,
            IdempotencyKey = idempotencyKey ?? string.Empty,
            Transient = transient,
            PublishedAtUnixMs = now.ToUnixTimeMilliseconds(),
            Publisher = new PublisherIdentity
            {
                Subject = publisher.Subject,
                Tenant = publisher.Tenant ?? string.Empty,
                NodeId = node.Id,
                Origin = origin,
            },
        };
    }
}
