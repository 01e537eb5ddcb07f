using System.Buffers;
using System.Net.WebSockets;
using Google.Protobuf;
using Realtime.Contracts;
using Realtime.Contracts.V1;
using Realtime.Gateway.Admission;
using Realtime.Gateway.Auth;
using Realtime.Gateway.Protocol;
using Realtime.Gateway.Publishing;
using Realtime.Gateway.Replay;
using Realtime.Gateway.Routing;
using StackExchange.Redis;

namespace Realtime.Gateway.Connections;

/// <summary>
/// One client on the JSON protocol v1 over WebSocket: a receive loop that handles its frames
/// in order, and a writer that drains its bounded send queue, so a slow socket only ever
/// delays itself.
/// </summary>
internal sealed partial class WebSocketConnection : IFrameSink, IDisposable
{
    private static readonly TimeSpan CloseTimeout = TimeSpan.FromSeconds(2);

    private readonly WebSocket _socket;
    private readonly ClientIdentity _identity;
    private readonly ConnectionServices _services;
    private readonly OutboundQueue _queue;
    private readonly Dictionary<string, ChannelCursor> _cursors = new(StringComparer.Ordinal);
    private readonly Lock _cursorsGate = new();
    private readonly SemaphoreSlim _publishSlots;
    private readonly CancellationTokenSource _receiveCancellation = new();
    private readonly ILogger _logger;
    private TokenBucket _publishes;
    private TokenBucket _subscribes;
    private TokenBucket _typing;
    private int _closeCode;
    private string? _closeReason;

    public WebSocketConnection(WebSocket socket, ClientIdentity identity, ConnectionServices services)
    {
        _socket = socket;
        _identity = identity;
        _services = services;
        _logger = services.Logger;
        _queue = new OutboundQueue(services.Options.SendQueueLimitBytes);
        _publishSlots = new SemaphoreSlim(services.Options.MaxInFlightPublishesPerConnection);
        Id = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8));
        var now = System.Diagnostics.Stopwatch.GetTimestamp();
        _publishes = new TokenBucket(services.Options.PublishesPerSecond, services.Options.PublishesPerSecond, now);
        _subscribes = new TokenBucket(services.Options.SubscribesPerSecond, services.Options.SubscribesPerSecond, now);
        _typing = new TokenBucket(services.Options.TypingEventsPerSecond, 1, now);
    }

    public string Id { get; }

    public void DeliverEvent(string channel, SharedFrame frame, ulong seq, string epoch)
    {
        lock (_cursorsGate)
        {
            if (!_cursors.TryGetValue(channel, out var cursor))
            {
                return;
            }

            if (cursor.Buffered is { } buffered)
            {
                if (buffered.Count >= ChannelCursor.MaxBuffered)
                {
                    RequestClose(CloseCodes.SlowConsumer, "slow consumer", dropQueued: true);
                    return;
                }

                frame.AddReference();
                buffered.Add((frame, seq, epoch));
                return;
            }

            if (cursor.Suspended || !HasRoomFor(channel, cursor, frame, seq))
            {
                return;
            }

            if (seq != 0 && cursor.Epoch == epoch && seq > cursor.LastSeq + 1)
            {
                // Events between the last one sent and this one never reached this node (its
                // route was missing for a moment). Fill them from history before going on.
                frame.AddReference();
                cursor.Buffered = [(frame, seq, epoch)];
                _ = FillGapAsync(channel, cursor, cursor.LastSeq, seq - 1, epoch);
                return;
            }

            if (!Advance(channel, cursor, seq, epoch))
            {
                return;
            }

            Enqueue(frame);
        }
    }

    public void CatchUp(string channel, ChannelPosition head)
    {
        lock (_cursorsGate)
        {
            if (_cursors.TryGetValue(channel, out var cursor) && cursor.Buffered is null
                && cursor.Epoch == head.Epoch && head.Seq > cursor.LastSeq)
            {
                cursor.Buffered = [];
                _ = FillGapAsync(channel, cursor, cursor.LastSeq, head.Seq, head.Epoch);
            }
        }
    }

    /// <summary>
    /// Backpressure in tiers, before the hard limit closes the connection: past half the send
    /// queue transient events are dropped; past three quarters live delivery of the channel stops
    /// and the client is sent <c>resync</c> (<c>slow_consumer</c>) with its own last position, from
    /// which it catches up at its own pace. Called under the lock.
    /// </summary>
    private bool HasRoomFor(string channel, ChannelCursor cursor, SharedFrame frame, ulong seq)
    {
        var limit = _services.Options.SendQueueLimitBytes;
        var queued = _queue.QueuedBytes + frame.Length;
        if (seq == 0)
        {
            return queued <= limit / 2;
        }

        if (queued <= limit / 4 * 3)
        {
            return true;
        }

        cursor.Suspended = true;
        LogSuspended(Id, channel);
        Send(ServerFrames.ForCurrentThread().Resync(channel, "slow_consumer", new ChannelPosition(cursor.Epoch, cursor.LastSeq)));
        return false;
    }

    private async Task FillGapAsync(string channel, ChannelCursor cursor, ulong after, ulong upTo, string epoch)
    {
        List<ReplayedEvent>? missing = null;
        try
        {
            missing = (await _services.History.ReadAsync(channel, after, upTo)).Events;
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            LogGapFillFailed(Id, e.Message);
        }

        lock (_cursorsGate)
        {
            if (!_cursors.TryGetValue(channel, out var current) || current != cursor)
            {
                // Unsubscribed meanwhile; ReleaseBuffered ran then.
                return;
            }

            var frames = ServerFrames.ForCurrentThread();
            if (missing is null)
            {
                Send(frames.Resync(channel, "beyond_window", new ChannelPosition(epoch, upTo)));
                cursor.LastSeq = upTo;
            }
            else
            {
                foreach (var replayed in missing)
                {
                    if (Advance(channel, cursor, replayed.Seq, epoch))
                    {
                        Send(frames.Event(replayed.Envelope, replayed.Seq, epoch));
                    }
                }
            }

            DrainBuffered(channel, cursor);
        }
    }

    /// <summary>Sends what was held during a replay or gap fill, minus what was already sent, and goes live. Called under the lock.</summary>
    private void DrainBuffered(string channel, ChannelCursor cursor)
    {
        var buffered = cursor.Buffered!;
        cursor.Buffered = null;
        foreach (var (live, seq, epoch) in buffered)
        {
            if (Advance(channel, cursor, seq, epoch))
            {
                Enqueue(live);
            }

            live.Release();
        }
    }

    /// <summary>
    /// Moves the cursor to an event about to be sent; false for a duplicate (at-least-once
    /// hand-offs upstream may repeat an event; the client gets it once). Called under the lock.
    /// </summary>
    private bool Advance(string channel, ChannelCursor cursor, ulong seq, string epoch)
    {
        if (seq == 0)
        {
            return true;
        }

        if (cursor.Epoch.Length > 0 && cursor.Epoch != epoch)
        {
            // The channel's history was reset: the client must reload and continue from here.
            Send(ServerFrames.ForCurrentThread().Resync(channel, "epoch_changed", new ChannelPosition(epoch, seq - 1)));
            cursor.LastSeq = seq - 1;
        }

        cursor.Epoch = epoch;
        if (seq <= cursor.LastSeq)
        {
            return false;
        }

        cursor.LastSeq = seq;
        return true;
    }

    private void Enqueue(SharedFrame frame)
    {
        if (!_queue.TryEnqueue(frame) && Volatile.Read(ref _closeCode) == 0)
        {
            LogSlowConsumer(Id, _queue.QueuedBytes);
            RequestClose(CloseCodes.SlowConsumer, "slow consumer", dropQueued: true);
        }
    }

    public async Task RunAsync(CancellationToken stopping)
    {
        using var stoppingRegistration = stopping.Register(StartDrain);
        Send(ServerFrames.ForCurrentThread().Connected(Id, _services.Node.Id));
        var writer = Task.Run(WriteLoopAsync, CancellationToken.None);
        try
        {
            // Reads are never cancelled: cancelling a WebSocket read aborts the socket, and a
            // closing connection must still flush its last frames and the close frame.
            await ReceiveLoopAsync(CancellationToken.None);
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException or IOException)
        {
            // The client went away or the connection is being closed: same clean-up either way.
        }
        finally
        {
            await ReleaseSubscriptionsAsync();
            RequestClose(CloseCodes.Normal, null, dropQueued: false);
        }

        if (await Task.WhenAny(writer, Task.Delay(CloseTimeout * 2, CancellationToken.None)) != writer)
        {
            // The writer is stuck on a client that does not read: cut the TCP connection.
            _socket.Abort();
            await writer;
        }

        _queue.Close();
    }

    public void Dispose()
    {
        _publishSlots.Dispose();
        _receiveCancellation.Dispose();
    }

    /// <summary>The node is stopping: tell the client when to leave, and close it then.</summary>
    private void StartDrain()
    {
        var delay = _services.Drain.NextDelay();
        Send(ServerFrames.ForCurrentThread().Reconnect("shutdown", delay));
        _ = Task.Delay(delay).ContinueWith(
            _ => RequestClose(CloseCodes.GoingAway, "server shutting down", dropQueued: false),
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }

    private async Task ReceiveLoopAsync(CancellationToken cancellationToken)
    {
        var maxMessage = _services.Options.MaxInboundMessageBytes;
        var buffer = ArrayPool<byte>.Shared.Rent(4 * 1024);
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                // Zero-byte read: an idle connection holds no receive buffer.
                var result = await _socket.ReceiveAsync(Memory<byte>.Empty, cancellationToken);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    return;
                }

                // The zero-byte read consumed nothing; an empty message already reports its end.
                var count = 0;
                while (!result.EndOfMessage)
                {
                    if (count == buffer.Length)
                    {
                        if (buffer.Length >= maxMessage)
                        {
                            RequestClose(CloseCodes.MessageTooBig, $"message larger than {maxMessage} bytes", dropQueued: false);
                            return;
                        }

                        var larger = ArrayPool<byte>.Shared.Rent(Math.Min(buffer.Length * 2, maxMessage));
                        buffer.AsSpan(0, count).CopyTo(larger);
                        ArrayPool<byte>.Shared.Return(buffer);
                        buffer = larger;
                    }

                    var room = Math.Min(buffer.Length, maxMessage) - count;
                    result = await _socket.ReceiveAsync(buffer.AsMemory(count, room), cancellationToken);
                    count += result.Count;
                }

                switch (result.MessageType)
                {
                    case WebSocketMessageType.Close:
                        return;
                    case WebSocketMessageType.Binary:
                        RequestClose(CloseCodes.UnsupportedData, "binary messages are not part of the JSON protocol", dropQueued: false);
                        return;
                }

                if (Volatile.Read(ref _closeCode) != 0)
                {
                    // Closing: what the client still sends until its close reply has no effect.
                    continue;
                }

                await HandleAsync(buffer.AsMemory(0, count));
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private async Task HandleAsync(ReadOnlyMemory<byte> message)
    {
        if (!ClientFrameParser.TryParse(message, out var frame, out var error))
        {
            SendError(error.Id, error.Code, error.Message);
            return;
        }

        switch (frame.Type)
        {
            case ClientFrameType.Ping:
                Send(ServerFrames.ForCurrentThread().Pong(frame.Id));
                break;
            case ClientFrameType.Subscribe:
                await SubscribeAsync(frame);
                break;
            case ClientFrameType.Unsubscribe:
                await UnsubscribeAsync(frame);
                break;
            case ClientFrameType.Publish:
                await PublishAsync(frame);
                break;
        }
    }

    private async Task SubscribeAsync(ClientFrame frame)
    {
        var channel = frame.Channel!;
        if (!Authorize(frame.Id, channel))
        {
            return;
        }

        if (!WithinRate(ref _subscribes, frame.Id))
        {
            return;
        }

        ChannelCursor cursor;
        lock (_cursorsGate)
        {
            if (_cursors.TryGetValue(channel, out var existing))
            {
                if (!existing.Suspended)
                {
                    // Already live: subscribing again changes nothing.
                    Send(ServerFrames.ForCurrentThread().Ok(frame.Id, channel));
                    return;
                }

                // Catching up after a slow_consumer resync: start over from the client's position.
                ReleaseBuffered(existing);
                _cursors.Remove(channel);
            }

            if (_cursors.Count >= _services.Options.MaxChannelsPerConnection)
            {
                SendError(frame.Id, ErrorCodes.TooManyChannels, $"At most {_services.Options.MaxChannelsPerConnection} channels per connection.");
                return;
            }

            // Live events are held from the moment the route exists until the replay is out.
            cursor = new ChannelCursor();
            _cursors[channel] = cursor;
        }

        ChannelPosition head;
        ReplayResult replay = default;
        try
        {
            // Route first, position second: every event after this position reaches this node.
            await _services.Hub.SubscribeAsync(channel, this);
            head = await _services.History.HeadAsync(channel);
            if (frame.Since is { } since && since.Epoch == head.Epoch && since.Seq <= head.Seq)
            {
                replay = await _services.History.ReadAsync(channel, since.Seq, head.Seq);
            }
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            lock (_cursorsGate)
            {
                ReleaseBuffered(cursor);
                _cursors.Remove(channel);
            }

            try
            {
                await _services.Hub.UnsubscribeAsync(channel, this).WaitAsync(CloseTimeout);
            }
            catch (Exception cleanup) when (cleanup is RedisException or TimeoutException)
            {
                LogRouteRemovalFailed(cleanup.Message);
            }

            SendError(frame.Id, ErrorCodes.Unavailable, "The routing table is unavailable; retry.");
            return;
        }

        if (frame.Since is { } requested && replay.Events is null)
        {
            // The position cannot be served: say so rather than leave a silent gap.
            var reason = requested.Epoch != head.Epoch ? "epoch_changed" : requested.Seq > head.Seq ? "unknown_position" : replay.Refusal ?? ChannelHistory.BeyondRetention;
            Send(ServerFrames.ForCurrentThread().Resync(channel, reason, head));
        }

        foreach (var replayed in replay.Events ?? [])
        {
            // Paced by the client's own reading: a long replay never overflows its send queue.
            await _queue.WaitForRoomAsync(_receiveCancellation.Token);
            Send(ServerFrames.ForCurrentThread().Event(replayed.Envelope, replayed.Seq, head.Epoch));
        }

        Send(ServerFrames.ForCurrentThread().Ok(frame.Id, channel, head));
        lock (_cursorsGate)
        {
            cursor.Epoch = head.Epoch;
            cursor.LastSeq = head.Seq;
            DrainBuffered(channel, cursor);
        }
    }

    private static void ReleaseBuffered(ChannelCursor cursor)
    {
        foreach (var (frame, _, _) in cursor.Buffered ?? [])
        {
            frame.Release();
        }

        cursor.Buffered = null;
    }

    private async Task UnsubscribeAsync(ClientFrame frame)
    {
        var channel = frame.Channel!;
        bool removed;
        lock (_cursorsGate)
        {
            removed = _cursors.Remove(channel, out var cursor);
            if (cursor is not null)
            {
                ReleaseBuffered(cursor);
            }
        }

        if (!removed)
        {
            SendError(frame.Id, ErrorCodes.NotSubscribed, "Not subscribed to this channel.");
            return;
        }

        try
        {
            await _services.Hub.UnsubscribeAsync(channel, this);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            // Locally unsubscribed either way; the stale route is cleared at the node's next start.
            LogRouteRemovalFailed(e.Message);
        }

        Send(ServerFrames.ForCurrentThread().Ok(frame.Id, channel));
    }

    private async Task PublishAsync(ClientFrame frame)
    {
        var channel = frame.Channel!;
        if (!Authorize(frame.Id, channel))
        {
            return;
        }

        if (frame.Data.Length > _services.Options.MaxPayloadBytes)
        {
            SendError(frame.Id, ErrorCodes.PayloadTooLarge, $"The payload is larger than {_services.Options.MaxPayloadBytes} bytes.");
            return;
        }

        if (!WithinRate(ref _publishes, frame.Id)
            || (frame.Transient && frame.Event!.StartsWith("typing", StringComparison.Ordinal) && !WithinRate(ref _typing, frame.Id)))
        {
            return;
        }

        var envelope = _services.Events.Create(
            _identity,
            PublishOrigin.Websocket,
            channel,
            frame.Event!,
            ByteString.CopyFrom(frame.Data.Span),
            EventFactory.JsonContentType,
            schemaVersion: 0,
            frame.ClientMsgId,
            frame.Transient);

        PublishResponse? earlier;
        try
        {
            earlier = await _services.Publisher.ReserveAsync(envelope, _receiveCancellation.Token);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            SendError(frame.Id, ErrorCodes.Unavailable, "Could not check the idempotency key; nothing was published. Retry.");
            return;
        }

        if (earlier is not null)
        {
            // A retry of a publish that already went through: same answer, nothing new.
            Send(ServerFrames.ForCurrentThread().Ack(frame.Id, earlier.EventId, earlier.Position));
            return;
        }

        // Reading pauses while too many publishes await Kafka: the client's own backpressure.
        await _publishSlots.WaitAsync(_receiveCancellation.Token);

        // The produce is enqueued synchronously, so publishes of this connection reach Kafka in
        // the order they were read; only the acknowledgements are awaited concurrently.
        _ = AcknowledgeAsync(frame.Id, envelope);
    }

    private async Task AcknowledgeAsync(string? requestId, EventEnvelope envelope)
    {
        try
        {
            var outcome = await _services.Publisher.PublishAsync(envelope, CancellationToken.None);
            Send(ServerFrames.ForCurrentThread().Ack(requestId, outcome.EventId, outcome.Position));
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
                _publishSlots.Release();
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

        Send(ServerFrames.ForCurrentThread().Error(requestId, ErrorCodes.RateLimited, "Too many requests on this connection; nothing was done.", retryAfter));
        return false;
    }

    private bool Authorize(string? requestId, string channel)
    {
        if (!ChannelName.IsValid(channel))
        {
            SendError(requestId, ErrorCodes.InvalidChannel, "Invalid channel name.");
            return false;
        }

        if (!_identity.Channels.Allows(channel))
        {
            SendError(requestId, ErrorCodes.NotAuthorized, "The token does not grant this channel.");
            return false;
        }

        return true;
    }

    private void SendError(string? id, string code, string message) =>
        Send(ServerFrames.ForCurrentThread().Error(id, code, message));

    /// <summary>Queues a frame created for this connection alone and drops the creator's reference.</summary>
    private void Send(SharedFrame frame)
    {
        Enqueue(frame);
        frame.Release();
    }

    private async Task WriteLoopAsync()
    {
        var reader = _queue.Reader;
        try
        {
            while (await reader.WaitToReadAsync())
            {
                while (reader.TryRead(out var frame))
                {
                    try
                    {
                        await _socket.SendAsync(frame.Memory, WebSocketMessageType.Text, endOfMessage: true, CancellationToken.None);
                    }
                    finally
                    {
                        _queue.Sent(frame);
                    }
                }
            }

            if (_socket.State is WebSocketState.Open or WebSocketState.CloseReceived)
            {
                using var timeout = new CancellationTokenSource(CloseTimeout);
                var code = Volatile.Read(ref _closeCode);
                await _socket.CloseOutputAsync((WebSocketCloseStatus)(code == 0 ? CloseCodes.Normal : code), _closeReason, timeout.Token);
            }
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException or IOException or ObjectDisposedException)
        {
            // The peer is gone; nothing left to send to.
        }
    }

    private void RequestClose(int code, string? reason, bool dropQueued)
    {
        if (Interlocked.CompareExchange(ref _closeCode, code, 0) != 0)
        {
            return;
        }

        _closeReason = reason;
        if (dropQueued)
        {
            _queue.Close();
        }
        else
        {
            _queue.Complete();
        }

        try
        {
            // Stops what waits on the connection's behalf (publish slots, replays); not the reads.
            _receiveCancellation.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }

        _ = AbortIfStillOpenAsync();
    }

    /// <summary>A peer that does not complete the close handshake in time is cut off.</summary>
    private async Task AbortIfStillOpenAsync()
    {
        await Task.Delay(CloseTimeout * 2, CancellationToken.None);
        if (_socket.State is not (WebSocketState.Closed or WebSocketState.Aborted))
        {
            _socket.Abort();
        }
    }

    private async Task ReleaseSubscriptionsAsync()
    {
        string[] channels;
        lock (_cursorsGate)
        {
            channels = [.. _cursors.Keys];
            foreach (var cursor in _cursors.Values)
            {
                ReleaseBuffered(cursor);
            }

            _cursors.Clear();
        }

        foreach (var channel in channels)
        {
            try
            {
                await _services.Hub.UnsubscribeAsync(channel, this);
            }
            catch (Exception e) when (e is RedisException or TimeoutException)
            {
                LogRouteRemovalFailed(e.Message);
            }
        }

    }

    [LoggerMessage(EventId = 4000, Level = LogLevel.Warning, Message = "Connection {ConnectionId} is a slow consumer ({QueuedBytes} bytes queued); closing with 4008")]
    private partial void LogSlowConsumer(string connectionId, long queuedBytes);

    [LoggerMessage(EventId = 4001, Level = LogLevel.Warning, Message = "Publish on connection {ConnectionId} failed: {Reason}")]
    private partial void LogPublishFailed(string connectionId, string reason);

    [LoggerMessage(EventId = 4004, Level = LogLevel.Information, Message = "Connection {ConnectionId} fell behind on {Channel}: live delivery stopped, resync sent")]
    private partial void LogSuspended(string connectionId, string channel);

    [LoggerMessage(EventId = 4003, Level = LogLevel.Warning, Message = "Gap fill on connection {ConnectionId} failed: {Reason}")]
    private partial void LogGapFillFailed(string connectionId, string reason);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Warning, Message = "Could not remove a route: {Reason}")]
    private partial void LogRouteRemovalFailed(string reason);

}

/// <summary>What every connection of a node shares.</summary>
internal sealed record ConnectionServices(
    ChannelHub Hub,
    ChannelHistory History,
    EventPublisher Publisher,
    DrainCoordinator Drain,
    EventFactory Events,
    NodeIdentity Node,
    GatewayOptions Options,
    ILogger Logger);
