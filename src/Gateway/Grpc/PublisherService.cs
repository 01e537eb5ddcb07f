using System.Text.Json;
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
    EventFactory events,
    EventPublisher publisher,
    IOptions<GatewayOptions> options) : Publisher.PublisherBase
{
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
