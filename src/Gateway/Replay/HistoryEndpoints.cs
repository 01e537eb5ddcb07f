using System.Buffers;
using System.Globalization;
using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using Realtime.Contracts;
using Realtime.Contracts.V1;
using Realtime.Gateway.Auth;
using Realtime.Gateway.Protocol;
using StackExchange.Redis;

namespace Realtime.Gateway.Replay;

/// <summary>
/// <c>GET /v1/channels/{channel}/events?since=&amp;epoch=&amp;limit=</c>: a channel's history over
/// HTTP, authorised like a subscribe (bearer token or <c>access_token</c>).
/// </summary>
internal static class HistoryEndpoint
{
    public static IEndpointConventionBuilder MapChannelHistory(this IEndpointRouteBuilder endpoints) =>
        endpoints.MapGet("/v1/channels/{channel}/events", HandleAsync);

    private static async Task<IResult> HandleAsync(string channel, HttpRequest request, TokenValidator tokens, ChannelAuthorizer authorizer, HistoryQuery query)
    {
        var (token, carrier) = HandshakeToken.From(request);
        var validation = await tokens.ValidateAsync(token, carrier);
        if (validation.Identity is not { } identity)
        {
            return Results.Json(new { error = "unauthorized", message = validation.Failure.ToString() }, statusCode: StatusCodes.Status401Unauthorized);
        }

        if (!ChannelName.IsValid(channel))
        {
            return Results.Json(new { error = ErrorCodes.InvalidChannel, message = "Invalid channel name." }, statusCode: StatusCodes.Status400BadRequest);
        }

        if (!await authorizer.AuthorizeAsync(identity, ChannelAction.History, channel))
        {
            return Results.Json(new { error = ErrorCodes.NotAuthorized, message = "Not allowed to read this channel's history." }, statusCode: StatusCodes.Status403Forbidden);
        }

        if (!TryNumber(request.Query["since"], 0, out var since) || !TryNumber(request.Query["limit"], HistoryQuery.DefaultLimit, out var limit)
            || limit is < 1 or > HistoryQuery.MaxLimit || request.Query["epoch"].Count > 1)
        {
            return Results.Json(new { error = ErrorCodes.BadRequest, message = $"since must be a non-negative integer, limit 1-{HistoryQuery.MaxLimit}." }, statusCode: StatusCodes.Status400BadRequest);
        }

        HistoryPage page;
        try
        {
            page = await query.ReadAsync(channel, request.Query["epoch"].ToString(), since, (int)limit);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            return Results.Json(new { error = ErrorCodes.Unavailable }, statusCode: StatusCodes.Status503ServiceUnavailable);
        }

        if (page.Resync is { } resync)
        {
            return Results.Json(
                new { type = "resync", channel, reason = resync.Reason, epoch = resync.Position.Epoch, seq = resync.Position.Seq },
                statusCode: StatusCodes.Status409Conflict);
        }

        return new PageResult(channel, page);
    }

    private static bool TryNumber(Microsoft.Extensions.Primitives.StringValues value, ulong fallback, out ulong number)
    {
        if (value.Count == 0)
        {
            number = fallback;
            return true;
        }

        return ulong.TryParse(value.ToString(), NumberStyles.None, CultureInfo.InvariantCulture, out number) && value.Count == 1;
    }

    /// <summary>Writes the page with each event as the same JSON object a subscriber receives.</summary>
    private sealed class PageResult(string channel, HistoryPage page) : IResult
    {
        public async Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.ContentType = "application/json";
            var buffer = new ArrayBufferWriter<byte>();
            using (var writer = new Utf8JsonWriter(buffer))
            {
                writer.WriteStartObject();
                writer.WriteString("channel"u8, channel);
                writer.WriteString("epoch"u8, page.Head.Epoch);
                writer.WriteNumber("seq"u8, page.Head.Seq);
                writer.WriteBoolean("more"u8, page.More);
                writer.WriteStartArray("events"u8);
                foreach (var replayed in page.Events)
                {
                    var frame = ServerFrames.ForCurrentThread().Event(replayed.Envelope, replayed.Seq, page.Head.Epoch);
                    writer.WriteRawValue(frame.Memory.Span, skipInputValidation: true);
                    frame.Release();
                }

                writer.WriteEndArray();
                writer.WriteEndObject();
            }

            await httpContext.Response.Body.WriteAsync(buffer.WrittenMemory);
        }
    }
}

/// <summary>The gRPC <c>realtime.v1.Channels</c> service: history for backend services.</summary>
[BindServiceMethod(typeof(Grpc.StrictRequestBinding.Channels), nameof(Grpc.StrictRequestBinding.Channels.BindService))]
internal sealed class ChannelsService(TokenValidator tokens, ChannelAuthorizer authorizer, HistoryQuery query) : Channels.ChannelsBase
{
    public override async Task<HistoryResponse> History(HistoryRequest request, ServerCallContext context)
    {
        var validation = await tokens.ValidateAsync(HandshakeToken.FromMetadata(context.RequestHeaders.GetValue("authorization")));
        var identity = validation.Identity ?? throw new RpcException(new Status(StatusCode.Unauthenticated, $"Token refused: {validation.Failure}."));
        if (!ChannelName.IsValid(request.Channel))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "Invalid channel name."));
        }

        if (!await authorizer.AuthorizeAsync(identity, ChannelAction.History, request.Channel))
        {
            throw new RpcException(new Status(StatusCode.PermissionDenied, "Not allowed to read this channel's history."));
        }

        if (request.Limit > HistoryQuery.MaxLimit)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"limit is at most {HistoryQuery.MaxLimit}."));
        }

        HistoryPage page;
        try
        {
            page = await query.ReadAsync(request.Channel, request.Epoch, request.SinceSeq, request.Limit == 0 ? HistoryQuery.DefaultLimit : (int)request.Limit);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, "History is unavailable; retry."));
        }

        var response = new HistoryResponse { Channel = request.Channel, Epoch = page.Head.Epoch, HeadSeq = page.Head.Seq, More = page.More };
        if (page.Resync is { } resync)
        {
            response.Resync = new Resync { Reason = resync.Reason, Epoch = resync.Position.Epoch, Seq = resync.Position.Seq };
            return response;
        }

        foreach (var replayed in page.Events)
        {
            var e = replayed.Envelope;
            response.Events.Add(new HistoryEvent
            {
                Seq = replayed.Seq,
                EventId = e.EventId,
                EventType = e.EventType,
                Payload = e.Payload,
                ContentType = e.ContentType,
                SchemaVersion = e.SchemaVersion,
                PublishedAtUnixMs = e.PublishedAtUnixMs,
            });
        }

        return response;
    }
}
