using System.Buffers;
using System.Net.WebSockets;
using System.Runtime.CompilerServices;
using Google.Protobuf;
using Realtime.Contracts;
using Realtime.Contracts.V1;
using Realtime.Gateway.Admission;
using Realtime.Gateway.Auth;
using Realtime.Gateway.Protocol;
using Realtime.Gateway.Publishing;
using StackExchange.Redis;

namespace Realtime.Gateway.Connections;

/// <summary>
/// One client over WebSocket, on the JSON or the protobuf protocol v1: a receive loop that
/// handles its frames in order (subscribe, unsubscribe, publish, ping) on top of the session
/// core, and text or binary messages out.
/// </summary>
internal sealed partial class WebSocketConnection : ClientSession
{
    private static readonly TimeSpan ProtocolErrorLinger = TimeSpan.FromMilliseconds(500);

    /// <summary>Most bytes written to the stream in one go when frames have queued up.</summary>
    private const int BatchLimitBytes = 32 * 1024;

    private readonly ILogger _logger;
    // Created by the first publish: most connections only subscribe, and an idle one holds nothing it never uses.
    private SemaphoreSlim? _publishSlots;
    private readonly WebSocketMessageType _messageType;
    // The upgraded stream under the WebSocket when whole frames may be written to it directly: no
    // compression, and each write to it is one atomic call (KeepAliveStream's gate). Null sends
    // every frame through the WebSocket.
    private readonly Stream? _frameStream;
    private readonly AcceptedWebSocket _accepted;
    private readonly IDisposable? _pings;
    private WebSocketFrameBatch? _batch;
    private TokenBucket _publishes;
    private TokenBucket _subscribes;
    private TokenBucket _typing;

    /// <summary>
    /// The connection owns its accepted WebSocket: when the session ends it stops its keep-alive
    /// tracking, disposes itself and releases the WebSocket with its admission and per-user slots,
    /// so its caller holds no state of its own while it runs.
    /// </summary>
    public WebSocketConnection(AcceptedWebSocket accepted, ConnectionServices services, Stream? frameStream, WebSocketKeepAlive keepAlive)
        : base(accepted.Identity, services, accepted.Format)
    {
        _logger = services.Logger;
        _accepted = accepted;
        _frameStream = frameStream;
        _messageType = accepted.Format == FrameFormat.Protobuf ? WebSocketMessageType.Binary : WebSocketMessageType.Text;
        var now = System.Diagnostics.Stopwatch.GetTimestamp();
        _publishes = new TokenBucket(services.Options.PublishesPerSecond, services.Options.PublishesPerSecond, now);
        _subscribes = new TokenBucket(services.Options.SubscribesPerSecond, services.Options.SubscribesPerSecond, now);
        _typing = new TokenBucket(services.Options.TypingEventsPerSecond, 1, now);
        _pings = accepted.Stream is { } stream ? keepAlive.Track(stream, this) : null;
        LogOpened(Id, accepted.Identity.Subject);
    }

    protected override Telemetry.Transport Transport => Telemetry.Transport.WebSocket;

    private WebSocket Socket => _accepted.Socket;

    protected override bool IsTransportClosed => Socket.State is WebSocketState.Closed or WebSocketState.Aborted;

    /// <summary>The close handshake completed; false when the WebSocket was aborted or cut.</summary>
    protected override bool EndedCleanly => Socket.State == WebSocketState.Closed;

    protected override async ValueTask OnEndedAsync()
    {
        _pings?.Dispose();
        LogClosed(Id);
        Dispose();
        await _accepted.DisposeAsync();
    }

    public override void Dispose()
    {
        _publishSlots?.Dispose();
        base.Dispose();
    }

    /// <remarks>
    /// A frame with nothing queued behind it goes out through the WebSocket, as it comes. When
    /// frames have queued up (a replay, a client that fell behind for a moment) they are laid out
    /// as WebSocket messages in one buffer and written to the stream together: one flush and one
    /// socket send per 32 KiB instead of one per frame. The WebSocket's own frames (pongs, the
    /// close) are single writes to the same stream, so they land between batches, never inside one.
    /// </remarks>
    protected override ValueTask WriteAsync(QueuedFrame item, bool more)
    {
        if (_frameStream is null || (!more && _batch is not { Length: > 0 }))
        {
            return Socket.SendAsync(item.Frame.Memory, _messageType, endOfMessage: true, CancellationToken.None);
        }

        var batch = _batch ??= new WebSocketFrameBatch(BatchLimitBytes);
        if (batch.TryAppend(_messageType, item.Frame.Memory.Span))
        {
            return more ? default : WriteBatchAsync();
        }

        return WriteAfterBatchAsync(item, more);
    }

    protected override ValueTask FlushWritesAsync() => _batch is { Length: > 0 } ? WriteBatchAsync() : default;

    /// <summary>The batch is full: write it, then the frame (in a new batch, or alone when it is larger than one).</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask WriteAfterBatchAsync(QueuedFrame item, bool more)
    {
        var batch = _batch!;
        if (batch.Length > 0)
        {
            await WriteBatchAsync();
        }

        if (!batch.TryAppend(_messageType, item.Frame.Memory.Span))
        {
            await Socket.SendAsync(item.Frame.Memory, _messageType, endOfMessage: true, CancellationToken.None);
        }
        else if (!more)
        {
            await WriteBatchAsync();
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask WriteBatchAsync()
    {
        var batch = _batch!;
        try
        {
            // What the WebSocket's own SendAsync refuses, a batch must not slip past it.
            if (Socket.State is not (WebSocketState.Open or WebSocketState.CloseReceived))
            {
                throw new WebSocketException(WebSocketError.InvalidState, $"The WebSocket is {Socket.State}; queued frames were not sent.");
            }

            await _frameStream!.WriteAsync(batch.Written, CancellationToken.None);
        }
        finally
        {
            batch.Clear();
        }
    }

    /// <summary>
    /// The keep-alive found the peer gone (no answer to a ping): cut the connection without a
    /// close handshake nobody would answer; the session ends as usual and releases its routes.
    /// </summary>
    public void AbortUnresponsive()
    {
        RequestClose(CloseCodes.Unresponsive, "no answer to ping", dropQueued: true);
        Socket.Abort();
    }

    protected override async Task CloseTransportAsync(int code, string? reason, CancellationToken cancellationToken)
    {
        // 1006 only names why the connection was cut; it never goes on the wire.
        if (code != CloseCodes.Unresponsive && Socket.State is WebSocketState.Open or WebSocketState.CloseReceived)
        {
            await Socket.CloseOutputAsync((WebSocketCloseStatus)code, reason, cancellationToken);
        }
    }

    protected override void Abort() => Socket.Abort();

    /// <summary>
    /// Reads are never cancelled: cancelling a WebSocket read aborts the socket, and a closing
    /// connection must still flush its last frames and the close frame.
    /// </summary>
    protected override async Task RunTransportAsync()
    {
        var maxMessage = Services.Options.MaxInboundMessageBytes;
        byte[]? buffer = null;
        try
        {
            while (true)
            {
                // Zero-byte read: an idle connection holds no receive buffer, here or in the
                // pool's hands (a buffer is rented per message and returned once it is handled).
                var result = await Socket.ReceiveAsync(Memory<byte>.Empty, CancellationToken.None);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    return;
                }

                // The zero-byte read consumed nothing; an empty message already reports its end.
                buffer ??= ArrayPool<byte>.Shared.Rent(4 * 1024);
                var count = 0;
                while (!result.EndOfMessage)
                {
                    // Pooled buffers come in powers of two: with a limit that is not one, the
                    // buffer is larger than the limit and the message is full at the limit.
                    if (count >= Math.Min(buffer.Length, maxMessage))
                    {
                        if (count >= maxMessage)
                        {
                            RequestClose(CloseCodes.MessageTooBig, $"message larger than {maxMessage} bytes", dropQueued: false);
                            await DrainUntilCloseAsync(buffer);
                            return;
                        }

                        var larger = ArrayPool<byte>.Shared.Rent(Math.Min(buffer.Length * 2, maxMessage));
                        buffer.AsSpan(0, count).CopyTo(larger);
                        ArrayPool<byte>.Shared.Return(buffer);
                        buffer = larger;
                    }

                    var room = Math.Min(buffer.Length, maxMessage) - count;
                    result = await Socket.ReceiveAsync(buffer.AsMemory(count, room), CancellationToken.None);
                    count += result.Count;
                }

                if (result.MessageType == WebSocketMessageType.Close)
                {
                    return;
                }

                if (result.MessageType != _messageType)
                {
                    RequestClose(
                        CloseCodes.UnsupportedData,
                        Format == FrameFormat.Protobuf ? "text messages are not part of the protobuf protocol" : "binary messages are not part of the JSON protocol",
                        dropQueued: false);
                    await DrainUntilCloseAsync(buffer);
                    return;
                }

                // While closing, what the client still sends until its close reply has no effect.
                if (!IsClosing)
                {
                    await HandleAsync(buffer.AsMemory(0, count));
                }

                ArrayPool<byte>.Shared.Return(buffer);
                buffer = null;
            }
        }
        catch (WebSocketException e) when (e.WebSocketErrorCode is not WebSocketError.ConnectionClosedPrematurely)
        {
            // The WebSocket found a protocol error (a text message that is not UTF-8, bad framing)
            // and sent its own close (1007, 1002) before giving up the connection. Closing TCP at
            // once races that frame: the peer's close reply meets a closed socket, gets a reset,
            // and the peer can lose the close frame with it. Linger briefly, as servers do after
            // an error, so the client reads its close code; bounded, and only on this path.
            await Task.Delay(ProtocolErrorLinger, CancellationToken.None);
            throw;
        }
        finally
        {
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    /// <summary>
    /// After closing on bad input: reads and drops what the client still sends until its close
    /// reply, so that TCP ends after the close handshake. Ending at once would cut the connection
    /// (it did not close cleanly) while our close frame may still be on its way, and the reset can
    /// take the frame with it: the client would not learn the close code. A client that never
    /// answers is cut by the session's close timeout.
    /// </summary>
    private async Task DrainUntilCloseAsync(byte[] buffer)
    {
        while ((await Socket.ReceiveAsync(buffer.AsMemory(), CancellationToken.None)).MessageType != WebSocketMessageType.Close)
        {
        }
    }

    private async Task HandleAsync(ReadOnlyMemory<byte> message)
    {
        var parsed = Format == FrameFormat.Protobuf
            ? ProtobufClientFrameParser.TryParse(message, out var frame, out var error)
            : ClientFrameParser.TryParse(message, out frame, out error);
        if (!parsed)
        {
            SendError(error.Id, error.Code, error.Message);
            return;
        }

        switch (frame.Type)
        {
            case ClientFrameType.Ping:
                Send(Frames.Pong(frame.Id));
                break;
            case ClientFrameType.Subscribe:
                if (await AuthorizeAsync(frame.Id, ChannelAction.Subscribe, frame.Channel!) && WithinRate(ref _subscribes, frame.Id))
                {
                    await SubscribeAsync(frame.Id, frame.Channel!, frame.Since);
                }

                break;
            case ClientFrameType.Unsubscribe:
                if (await UnsubscribeAsync(frame.Channel!))
                {
                    Send(Frames.Ok(frame.Id, frame.Channel!));
                }
                else
                {
                    SendError(frame.Id, ErrorCodes.NotSubscribed, "Not subscribed to this channel.");
                }

                break;
            case ClientFrameType.Publish:
                await PublishAsync(frame);
                break;
            case ClientFrameType.Refresh:
                await RefreshAsync(frame);
                break;
        }
    }

    private async Task PublishAsync(ClientFrame frame)
    {
        var channel = frame.Channel!;
        if (!await AuthorizeAsync(frame.Id, ChannelAction.Publish, channel))
        {
            return;
        }

        if (frame.Data.Length > Services.Options.MaxPayloadBytes)
        {
            SendError(frame.Id, ErrorCodes.PayloadTooLarge, $"The payload is larger than {Services.Options.MaxPayloadBytes} bytes.");
            return;
        }

        var contentType = frame.ContentType ?? EventFactory.JsonContentType;
        if (frame.ContentType is not null && ServerFrames.IsJson(contentType) && !JsonPayload.IsValid(frame.Data.Span))
        {
            // The JSON protocol's data was validated by its parser; the protobuf protocol's is bytes.
            SendError(frame.Id, ErrorCodes.BadRequest, "The data is not valid JSON but its content type says it is.");
            return;
        }

        if (!WithinRate(ref _publishes, frame.Id)
            || (frame.Transient && frame.Event!.StartsWith("typing", StringComparison.Ordinal) && !WithinRate(ref _typing, frame.Id)))
        {
            return;
        }

        if (!await Services.UserLimits.TryPublishAsync(Identity))
        {
            Services.Metrics.Rejected("rate_limited");
            Send(Frames.Error(frame.Id, ErrorCodes.RateLimited, "This user publishes faster than it may over all its connections; nothing was done.", TimeSpan.FromSeconds(1)));
            return;
        }

        var envelope = Services.Events.Create(
            Identity,
            PublishOrigin.Websocket,
            channel,
            frame.Event!,
            ByteString.CopyFrom(frame.Data.Span),
            contentType,
            schemaVersion: 0,
            frame.ClientMsgId,
            frame.Transient);

        PublishResponse? earlier;
        try
        {
            earlier = await Services.Publisher.ReserveAsync(envelope, SessionClosing);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            SendError(frame.Id, ErrorCodes.Unavailable, "Could not check the idempotency key; nothing was published. Retry.");
            return;
        }

        if (earlier is not null)
        {
            // A retry of a publish that already went through: same answer, nothing new.
            Send(Frames.Ack(frame.Id, earlier.EventId, earlier.Position));
            return;
        }

        // Reading pauses while too many publishes await Kafka: the client's own backpressure.
        // Only the receive loop gets here, one frame at a time, so the lazy creation needs no lock.
        _publishSlots ??= new SemaphoreSlim(Services.Options.MaxInFlightPublishesPerConnection);
        await _publishSlots.WaitAsync(SessionClosing);

        // The produce is enqueued synchronously, so publishes of this connection reach Kafka in
        // the order they were read; only the acknowledgements are awaited concurrently.
        _ = AcknowledgeAsync(frame.Id, envelope);
    }

    /// <summary>Replaces the connection's token with a newer one for the same subject; subscriptions it no longer grants end.</summary>
    private async Task RefreshAsync(ClientFrame frame)
    {
        var validation = await Services.Tokens.ValidateAsync(frame.Token, TokenCarrier.Header);
        if (validation.Identity is not { } fresh)
        {
            SendError(frame.Id, ErrorCodes.RefreshRefused, $"The new token was refused: {validation.Failure}. The current one stays in force.");
            return;
        }

        if (fresh.Subject != Identity.Subject || fresh.Tenant != Identity.Tenant)
        {
            SendError(frame.Id, ErrorCodes.RefreshRefused, "The new token is for another subject. The current one stays in force.");
            return;
        }

        Identity = fresh;
        Send(Frames.Ok(frame.Id, null));
        await EnforceSubscriptionsAsync();
    }

    private async Task AcknowledgeAsync(string? requestId, EventEnvelope envelope)
    {
        try
        {
            var outcome = await Services.Publisher.PublishAsync(envelope, CancellationToken.None);
            Send(Frames.Ack(requestId, outcome.EventId, outcome.Position));
        }
        catch (PublishFailedException e)
        {
            LogPublishFailed(Id, e.Message);
            SendError(requestId, ErrorCodes.Unavailable, "Kafka did not acknowledge the event; it may or may not have been published.");
        }
        finally
        {
            try
            {
                _publishSlots!.Release();
            }
            catch (ObjectDisposedException)
            {
                // The connection ended while the acknowledgement was pending.
            }
        }
    }

    /// <summary>Takes a token from a per-connection bucket, or answers <c>rate_limited</c>.</summary>
    private bool WithinRate(ref TokenBucket bucket, string? requestId)
    {
        if (bucket.TryTake(System.Diagnostics.Stopwatch.GetTimestamp(), System.Diagnostics.Stopwatch.Frequency, out var retryAfter))
        {
            return true;
        }

        Services.Metrics.Rejected("rate_limited");
        Send(Frames.Error(requestId, ErrorCodes.RateLimited, "Too many requests on this connection; nothing was done.", retryAfter));
        return false;
    }

    private async ValueTask<bool> AuthorizeAsync(string? requestId, ChannelAction action, string channel)
    {
        if (!ChannelName.IsValid(channel))
        {
            SendError(requestId, ErrorCodes.InvalidChannel, "Invalid channel name.");
            return false;
        }

        if (!await Services.Authorizer.AuthorizeAsync(Identity, action, channel))
        {
            SendError(requestId, ErrorCodes.NotAuthorized, action == ChannelAction.Subscribe ? "Not allowed to subscribe to this channel." : "Not allowed to publish to this channel.");
            return false;
        }

        return true;
    }

    [LoggerMessage(EventId = 5001, Level = LogLevel.Debug, Message = "Connection {ConnectionId} opened for {Subject}")]
    private partial void LogOpened(string connectionId, string subject);

    [LoggerMessage(EventId = 5002, Level = LogLevel.Debug, Message = "Connection {ConnectionId} closed")]
    private partial void LogClosed(string connectionId);

    [LoggerMessage(EventId = 4001, Level = LogLevel.Warning, Message = "Publish on connection {ConnectionId} failed: {Reason}")]
    private partial void LogPublishFailed(string connectionId, string reason);
}
