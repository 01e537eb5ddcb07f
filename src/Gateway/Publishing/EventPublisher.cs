using Realtime.Contracts.V1;
using StackExchange.Redis;

namespace Realtime.Gateway.Publishing;

/// <summary>
/// Step 1 for every entry point: publish an event into the ingress topic, at most once per
/// idempotency key. Two phases so that callers keep their publish order: the reservation is
/// awaited in order, the produce is enqueued in order and only its acknowledgement is awaited
/// concurrently.
/// </summary>
internal sealed partial class EventPublisher(
    IngressPublisher ingress,
    IdempotencyStore idempotency,
    Telemetry.GatewayMetrics metrics,
    Hosting.Telemetry.DeliveryLatency latency,
    ILogger<EventPublisher> logger)
{
    /// <summary>
    /// For an event with an idempotency key, reserves the key. Returns the earlier outcome when
    /// the key was already used (nothing must be published), else null. Throws
    /// <see cref="RedisException"/> or <see cref="TimeoutException"/> when Redis cannot answer.
    /// </summary>
    public Task<PublishResponse?> ReserveAsync(EventEnvelope envelope, CancellationToken cancellationToken) =>
        string.IsNullOrEmpty(envelope.IdempotencyKey)
            ? Task.FromResult<PublishResponse?>(null)
            : idempotency.ReserveAsync(envelope.Channel, envelope.Publisher.Subject, envelope.IdempotencyKey, cancellationToken);

    /// <summary>Publishes a reserved (or key-less) event; its produce is enqueued before this returns its task.</summary>
    public async Task<PublishResponse> PublishAsync(EventEnvelope envelope, CancellationToken cancellationToken)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var produce = ingress.PublishAsync(envelope, cancellationToken);
        var keyed = !string.IsNullOrEmpty(envelope.IdempotencyKey);
        try
        {
            var outcome = new PublishResponse { EventId = envelope.EventId, Position = await produce };
            latency.RecordSinceTimestamp(Hosting.Telemetry.DeliveryHop.PublishAck, started);
            metrics.Published("ack");
            if (keyed)
            {
                await RememberAsync(envelope, outcome);
            }

            return outcome;
        }
        catch (PublishFailedException)
        {
            metrics.Published("error");
            if (keyed)
            {
                await ForgetAsync(envelope);
            }

            throw;
        }
    }

    private async Task RememberAsync(EventEnvelope envelope, PublishResponse outcome)
    {
        try
        {
            await idempotency.CompleteAsync(envelope.Channel, envelope.Publisher.Subject, envelope.IdempotencyKey, outcome);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            // The event is durable; only a later retry's deduplication is lost.
            LogNotRemembered(e.Message);
        }
    }

    private async Task ForgetAsync(EventEnvelope envelope)
    {
        try
        {
            await idempotency.ReleaseAsync(envelope.Channel, envelope.Publisher.Subject, envelope.IdempotencyKey);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            // The reservation expires with the idempotency window.
            LogNotRemembered(e.Message);
        }
    }

    [LoggerMessage(EventId = 7000, Level = LogLevel.Warning, Message = "Could not record a publish outcome for its idempotency key: {Reason}")]
    private partial void LogNotRemembered(string reason);
}
