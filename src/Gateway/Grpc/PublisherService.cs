using System.Text.Json;
using System.Threading.Channels;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Options;
using Realtime.Contracts;
using Realtime.Contracts.V1;
using Realtime.Gateway.Auth;
using Realtime.Gateway.Publishing;

namespace Realtime.Gateway.Grpc;

/// <summary>
/// The gRPC <c>realtime.v1.Publisher</c> service for backend services: the same path into the
/// ingress topic as a WebSocket publish, with the same channel rules and permissions.
/// </summary>
[BindServiceMethod(typeof(StrictRequestBinding.Publisher), nameof(StrictRequestBinding.Publisher.BindService))]
internal sealed class PublisherService(
    TokenValidator tokens,
    ChannelAuthorizer authorizer,
    RevocationList revocations,
    EventFactory events,
    EventPublisher publisher,
    Telemetry.GatewayMetrics metrics,
    Connections.DrainCoordinator drain,
    TimeProvider time,
    IOptions<GatewayOptions> options) : Publisher.PublisherBase
{
    /// <summary>Appends a response to the HTTP/2 stream without flushing it.</summary>
    private static readonly WriteOptions Buffered = new(WriteFlags.BufferHint);

    private readonly GatewayOptions _options = options.Value;

    public override async Task<PublishResponse> Publish(PublishRequest request, ServerCallContext context)
    {
        var identity = await AuthenticateAsync(context);
        var envelope = await PrepareAsync(identity, request, index: null);
        return await ReserveAsync(envelope, context.CancellationToken) ?? await PublishOneAsync(envelope, context.CancellationToken);
    }

    public override async Task<PublishBatchResponse> PublishBatch(PublishBatchRequest request, ServerCallContext context)
    {
        var identity = await AuthenticateAsync(context);
        if (request.Events.Count == 0)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "The batch holds no events."));
        }

        if (request.Events.Count > _options.MaxBatchEvents)
        {
            throw new RpcException(new Status(StatusCode.ResourceExhausted, $"A batch holds at most {_options.MaxBatchEvents} events."));
        }

        // Validate everything first: a batch is accepted whole or not at all.
        var envelopes = new EventEnvelope[request.Events.Count];
        var keys = new HashSet<(string, string)>();
        for (var i = 0; i < envelopes.Length; i++)
        {
            envelopes[i] = await PrepareAsync(identity, request.Events[i], i);
            if (envelopes[i].IdempotencyKey.Length > 0 && !keys.Add((envelopes[i].Channel, envelopes[i].IdempotencyKey)))
            {
                throw new RpcException(new Status(StatusCode.InvalidArgument, $"Idempotency key used twice in one batch (event {i})."));
            }
        }

        // Keys reserved in order, then produces started in order, so events of one channel keep
        // their order within the batch; a retried event answers with its earlier outcome.
        var earlier = new PublishResponse?[envelopes.Length];
        for (var i = 0; i < envelopes.Length; i++)
        {
            earlier[i] = await ReserveAsync(envelopes[i], context.CancellationToken);
        }

        var publishes = new Task<PublishResponse>[envelopes.Length];
        for (var i = 0; i < envelopes.Length; i++)
        {
            publishes[i] = earlier[i] is { } known ? Task.FromResult(known) : PublishOneAsync(envelopes[i], context.CancellationToken);
        }

        var response = new PublishBatchResponse();
        response.Results.AddRange(await Task.WhenAll(publishes));
        return response;
    }

    /// <summary>
    /// One authentication for a stream of events. The reading loop prepares, reserves and starts
    /// each event's produce in request order (as <see cref="PublishBatch"/> does) and queues its
    /// outcome; one writer answers the queue in order. The queue holds at most
    /// <see cref="GatewayOptions.MaxBatchEvents"/> outcomes, so a caller that stops reading its
    /// responses stops the reading loop too, instead of growing what the gateway holds.
    /// </summary>
    public override async Task PublishStream(IAsyncStreamReader<PublishRequest> requestStream, IServerStreamWriter<PublishStreamResponse> responseStream, ServerCallContext context)
    {
        var identity = await AuthenticateAsync(context);
        metrics.PublishStreamOpened();
        try
        {
            await PublishStreamAsync(identity, requestStream, responseStream, context);
        }
        finally
        {
            metrics.PublishStreamClosed();
        }
    }

    private async Task PublishStreamAsync(ClientIdentity identity, IAsyncStreamReader<PublishRequest> requestStream, IServerStreamWriter<PublishStreamResponse> responseStream, ServerCallContext context)
    {
        var outcomes = Channel.CreateBounded<Task<PublishStreamResponse>>(new BoundedChannelOptions(_options.MaxBatchEvents) { SingleReader = true, SingleWriter = true });
        var answering = AnswerInOrderAsync(outcomes, responseStream);
        using var reading = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, drain.Draining);
        Status? end = null;
        try
        {
            while (await requestStream.MoveNext(reading.Token))
            {
                if (StreamRefusal(identity) is { } refused)
                {
                    end = refused;
                    break;
                }

                await outcomes.Writer.WriteAsync(await AcceptAsync(identity, requestStream.Current, context.CancellationToken), context.CancellationToken);
            }
        }
        catch (OperationCanceledException) when (drain.IsDraining && !context.CancellationToken.IsCancellationRequested)
        {
            end = new Status(StatusCode.Unavailable, "The gateway is shutting down. Every event read was answered; send the others on a new stream.");
        }
        catch (RpcException e)
        {
            // A request that is not a PublishRequest: what was read before it is still answered.
            end = e.Status;
        }
        catch (ChannelClosedException)
        {
            // Answering failed; awaiting it below ends the call with its reason.
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or InvalidOperationException && context.CancellationToken.IsCancellationRequested)
        {
            // The caller went away: nobody is left to answer.
            outcomes.Writer.TryComplete();
            await IgnoreFailureAsync(answering);
            return;
        }
        finally
        {
            outcomes.Writer.TryComplete();
        }

        await answering;
        if (end is { } status)
        {
            throw new RpcException(status);
        }
    }

    /// <summary>Why a stream authenticated at its start may publish no further: checked before each event.</summary>
    private Status? StreamRefusal(ClientIdentity identity) =>
        time.GetUtcNow() >= identity.ExpiresAt ? new Status(StatusCode.Unauthenticated, "Token refused: Expired. Open a new stream with a fresh token.")
        : revocations.IsRevoked(identity) ? new Status(StatusCode.Unauthenticated, "Token refused: Revoked.")
        : null;

    private static async Task IgnoreFailureAsync(Task task)
    {
        try
        {
            await task;
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or InvalidOperationException or ChannelClosedException)
        {
            // Writes to a call that has ended.
        }
    }

    /// <summary>Starts one event of a stream; the task it returns is that event's answer, an error response for a refused event.</summary>
    private async ValueTask<Task<PublishStreamResponse>> AcceptAsync(ClientIdentity identity, PublishRequest request, CancellationToken cancellationToken)
    {
        try
        {
            var envelope = await PrepareAsync(identity, request, index: null);
            return await ReserveAsync(envelope, cancellationToken) is { } earlier
                ? Task.FromResult(new PublishStreamResponse { Result = earlier })
                : AnswerAsync(PublishOneAsync(envelope, cancellationToken));
        }
        catch (RpcException e)
        {
            // Redis could not check the idempotency key: an error of ours, not the caller's.
            metrics.Published(e.StatusCode == StatusCode.Unavailable ? "error" : "refused");
            return Task.FromResult(Refused(e.Status));
        }
    }

    /// <summary>The answer of an event whose produce started (a failed produce was counted as an error by <see cref="EventPublisher"/>).</summary>
    private static async Task<PublishStreamResponse> AnswerAsync(Task<PublishResponse> publish)
    {
        try
        {
            return new PublishStreamResponse { Result = await publish };
        }
        catch (RpcException e)
        {
            return Refused(e.Status);
        }
    }

    private static PublishStreamResponse Refused(Status status) =>
        new() { Error = new PublishError { Code = (int)status.StatusCode, Message = status.Detail } };

    /// <summary>
    /// Writes each outcome once it completes, in request order. A write is flushed only when the
    /// next outcome is not ready yet, so acknowledgements that complete together (a produce batch's
    /// delivery reports) leave in one write.
    /// </summary>
    private static async Task AnswerInOrderAsync(Channel<Task<PublishStreamResponse>> outcomes, IServerStreamWriter<PublishStreamResponse> responses)
    {
        try
        {
            while (await outcomes.Reader.WaitToReadAsync())
            {
                while (outcomes.Reader.TryRead(out var next))
                {
                    var response = await next;
                    responses.WriteOptions = outcomes.Reader.TryPeek(out var after) && after.IsCompleted ? Buffered : null;
                    await responses.WriteAsync(response);
                }
            }
        }
        catch (Exception e)
        {
            // The caller is gone: the reading loop must not wait for room that will never come.
            outcomes.Writer.TryComplete(e);
            throw;
        }
    }

    private async Task<PublishResponse?> ReserveAsync(EventEnvelope envelope, CancellationToken cancellationToken)
    {
        try
        {
            return await publisher.ReserveAsync(envelope, cancellationToken);
        }
        catch (Exception e) when (e is StackExchange.Redis.RedisException or TimeoutException)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, "Could not check the idempotency key; nothing was published. Retry."));
        }
    }

    private async Task<PublishResponse> PublishOneAsync(EventEnvelope envelope, CancellationToken cancellationToken)
    {
        try
        {
            return await publisher.PublishAsync(envelope, cancellationToken);
        }
        catch (PublishFailedException)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, "Kafka did not acknowledge the event; it may or may not have been published."));
        }
    }

    private async Task<ClientIdentity> AuthenticateAsync(ServerCallContext context)
    {
        var token = HandshakeToken.FromMetadata(context.RequestHeaders.GetValue("authorization"));
        var validation = await tokens.ValidateAsync(token);
        return validation.Identity
            ?? throw new RpcException(new Status(StatusCode.Unauthenticated, $"Token refused: {validation.Failure}."));
    }

    private async Task<EventEnvelope> PrepareAsync(ClientIdentity identity, PublishRequest request, int? index)
    {
        var where = index is null ? string.Empty : $" (event {index})";
        if (!ChannelName.IsValid(request.Channel))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"Invalid channel name{where}."));
        }

        if (!await authorizer.AuthorizeAsync(identity, ChannelAction.Publish, request.Channel))
        {
            throw new RpcException(new Status(StatusCode.PermissionDenied, $"Not allowed to publish to this channel{where}."));
        }

        if (string.IsNullOrEmpty(request.EventType) || request.EventType.Length > Protocol.ClientFrameParser.MaxEventTypeLength)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"event_type must hold 1-{Protocol.ClientFrameParser.MaxEventTypeLength} characters{where}."));
        }

        if (request.Payload.Length > _options.MaxPayloadBytes)
        {
            throw new RpcException(new Status(StatusCode.ResourceExhausted, $"The payload is larger than {_options.MaxPayloadBytes} bytes{where}."));
        }

        var contentType = string.IsNullOrEmpty(request.ContentType) ? EventFactory.JsonContentType : request.ContentType;
        if (Protocol.ServerFrames.IsJson(contentType) && !Protocol.JsonPayload.IsValid(request.Payload.Span))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"The payload is not valid JSON but its content type says it is{where}."));
        }

        return events.Create(identity, PublishOrigin.Grpc, request.Channel, request.EventType, request.Payload, contentType, request.SchemaVersion, request.IdempotencyKey, request.Transient);
    }
}
