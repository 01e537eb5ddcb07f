using System.Buffers;
using System.IO.Pipelines;
using Microsoft.Extensions.Options;
using Realtime.Contracts.V1;
using Realtime.Gateway.Admission;
using Realtime.Gateway.Auth;
using Realtime.Gateway.Connections;
using Realtime.Gateway.Protocol;
using StackExchange.Redis;

namespace Realtime.Gateway.Publishing;

/// <summary>
/// <c>POST /v1/channels/{channel}/events</c>: publishing for clients that listen over SSE or
/// long-poll. The body is a publish frame without type and channel
/// (<c>{"event":"message.created","data":{...},"clientMsgId":"...","transient":false}</c>);
/// the answer is the acknowledgement (<c>200 {"eventId":"...","position":{...}}</c>) once Kafka
/// has the event, or an error status with <c>{"error":"code","message":"..."}</c>.
/// </summary>
internal static partial class HttpPublishEndpoint
{
    public const string Path = "/v1/channels/{channel}/events";

    public static IEndpointConventionBuilder MapRealtimeHttpPublish(this IEndpointRouteBuilder endpoints) =>
        endpoints.MapPost(Path, HandleAsync);

    private static async Task HandleAsync(
        HttpContext context,
        string channel,
        TokenValidator tokens,
        EventPublisher publisher,
        EventFactory events,
        UserLimits limits,
        ChannelAuthorizer authorizer,
        IOptions<GatewayOptions> options,
        ILoggerFactory loggers)
    {
        var logger = loggers.CreateLogger("Realtime.Gateway.HttpPublish");
        var settings = options.Value;
        if (await HttpHandshake.AuthenticateAsync(context, tokens, logger) is not { } identity
            || !await HttpHandshake.AuthorizeAsync(context, authorizer, identity, ChannelAction.Publish, channel))
        {
            return;
        }

        if (!await limits.TryPublishAsync(identity))
        {
            await HttpHandshake.RefuseAsync(context, StatusCodes.Status429TooManyRequests, ErrorCodes.RateLimited, "This user publishes faster than it may; nothing was published.", TimeSpan.FromSeconds(1));
            return;
        }

        var body = await ReadBodyAsync(context.Request.BodyReader, settings.MaxInboundMessageBytes, context.RequestAborted);
        if (body is null)
        {
            await HttpHandshake.RefuseAsync(context, StatusCodes.Status413PayloadTooLarge, ErrorCodes.PayloadTooLarge, $"The body is larger than {settings.MaxInboundMessageBytes} bytes.");
            return;
        }

        if (!ClientFrameParser.TryParsePublishBody(body.Value, channel, out var frame, out var error))
        {
            await HttpHandshake.RefuseAsync(context, StatusCodes.Status400BadRequest, error.Code, error.Message);
            return;
        }

        if (frame.Type != ClientFrameType.Publish)
        {
            await HttpHandshake.RefuseAsync(context, StatusCodes.Status400BadRequest, ErrorCodes.BadRequest, "Only publishes are posted here.");
            return;
        }

        if (frame.Data.Length > settings.MaxPayloadBytes)
        {
            await HttpHandshake.RefuseAsync(context, StatusCodes.Status413PayloadTooLarge, ErrorCodes.PayloadTooLarge, $"The payload is larger than {settings.MaxPayloadBytes} bytes.");
            return;
        }

        var envelope = events.Create(
            identity,
            PublishOrigin.Http,
            channel,
            frame.Event!,
            Google.Protobuf.ByteString.CopyFrom(frame.Data.Span),
            EventFactory.JsonContentType,
            schemaVersion: 0,
            frame.ClientMsgId,
            frame.Transient);
        try
        {
            var outcome = await publisher.ReserveAsync(envelope, context.RequestAborted)
                ?? await publisher.PublishAsync(envelope, CancellationToken.None);
            await context.Response.WriteAsJsonAsync(new Acknowledgement(outcome.EventId, new AckPosition(outcome.Position.Partition, outcome.Position.Offset)));
        }
        catch (Exception e) when (e is RedisException or TimeoutException or PublishFailedException)
        {
            LogPublishFailed(logger, e.Message);
            await HttpHandshake.RefuseAsync(context, StatusCodes.Status503ServiceUnavailable, ErrorCodes.Unavailable, "The event may not have been published; retry with the same clientMsgId.", TimeSpan.FromSeconds(1));
        }
    }

    /// <summary>The whole body, or null when it is longer than <paramref name="limit"/>.</summary>
    private static async Task<ReadOnlyMemory<byte>?> ReadBodyAsync(PipeReader reader, int limit, CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await reader.ReadAsync(cancellationToken);
            if (result.Buffer.Length > limit)
            {
                reader.AdvanceTo(result.Buffer.Start, result.Buffer.End);
                return null;
            }

            if (result.IsCompleted)
            {
                var body = result.Buffer.ToArray();
                reader.AdvanceTo(result.Buffer.End);
                return body;
            }

            reader.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }
    }

    private sealed record AckPosition(int Partition, long Offset);

    private sealed record Acknowledgement(string EventId, AckPosition Position);

    [LoggerMessage(EventId = 7100, Level = LogLevel.Warning, Message = "HTTP publish failed: {Reason}")]
    private static partial void LogPublishFailed(ILogger logger, string reason);
}
