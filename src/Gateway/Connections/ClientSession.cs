using Realtime.Contracts.V1;
using Realtime.Gateway.Admission;
using Realtime.Gateway.Auth;
using Realtime.Gateway.Protocol;
using Realtime.Gateway.Publishing;
using Realtime.Gateway.Replay;
using Realtime.Gateway.Routing;
using Realtime.Gateway.Telemetry;
using Realtime.Hosting.Telemetry;
using StackExchange.Redis;

namespace Realtime.Gateway.Connections;

/// <summary>
/// What every streaming client connection does, whatever its transport (WebSocket, SSE): keeps
/// a cursor per subscribed channel, replays from a position, fills gaps, drops duplicates,
/// applies backpressure in tiers, drains. One writer at a time drains the bounded send queue
/// through the transport, so a slow client only ever delays itself.
/// </summary>
/// <remarks>
/// Subclasses supply the transport: how a queued frame is written, how the connection is
/// closed, and what runs while it is open (a WebSocket's receive loop; an SSE stream's wait).
/// </remarks>
internal abstract partial class ClientSession : IFrameSink, IDisconnectable, IDisposable
{
    /// <summary>Replayed frames queued before the writer is started for them: about 16 KiB of events, one write.</summary>
    private const int ReplaySlice = 64;

    protected static readonly TimeSpan CloseTimeout = TimeSpan.FromSeconds(2);

    private readonly Dictionary<string, ChannelCursor> _cursors = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _sessionCancellation = new();
    private readonly ILogger _logger;
    private int _closeCode;
    // Created when the writer ends or the session waits for it, whichever comes first: an open
    // connection holds no completion source (and its task) for the whole of its life.
    private TaskCompletionSource? _writerDone;
    private int _pumping;
    private int _draining;
    private volatile bool _writerStopped;
    private string? _closeReason;

    protected ClientSession(ClientIdentity identity, ConnectionServices services, FrameFormat format)
    {
        Identity = identity;
        Services = services;
        Format = format;
        _logger = services.Logger;
        Queue = new OutboundQueue(services.Options.SendQueueLimitBytes);
        Id = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8));
    }

    public string Id { get; }

    /// <summary>Who the client is; replaced by a valid <c>refresh</c> for the same subject.</summary>
    public ClientIdentity Identity { get; protected set; }

    public FrameFormat Format { get; }

    /// <summary>Bytes waiting in this connection's send queue.</summary>
    public long QueuedBytes => Queue.QueuedBytes;

    /// <summary>The transport, for metrics.</summary>
    protected abstract Transport Transport { get; }

    protected ConnectionServices Services { get; }

    protected OutboundQueue Queue { get; }

    /// <summary>Guards the cursors: the delivery thread and the connection's own tasks both use them.</summary>
    protected Lock CursorsGate { get; } = new();

    // Only the expiry sweep reads and writes it, one step at a time.
    private DateTimeOffset _warnedFor = DateTimeOffset.MinValue;

    /// <summary>Cancelled when the session closes: stops whatever waits on its behalf (publish slots, replays).</summary>
    protected CancellationToken SessionClosing => _sessionCancellation.Token;

    protected bool IsClosing => Volatile.Read(ref _closeCode) != 0;

    protected int CloseCode => Volatile.Read(ref _closeCode);

    protected string? CloseReason => _closeReason;

    protected IFrameEncoder Frames => FrameEncoders.ForCurrentThread(Format);

    /// <summary>Channels this session is subscribed to, with their cursors. Read under <see cref="CursorsGate"/>.</summary>
    protected IReadOnlyDictionary<string, ChannelCursor> Cursors => _cursors;

    public void DeliverEvent(string channel, OutgoingEvent outgoing)
    {
        if (QueueEvent(channel, outgoing))
        {
            Pump();
        }
    }

    public void StartWrites()
    {
        if (Queue.NeedsWriter)
        {
            Pump();
        }
    }

    public bool QueueEvent(string channel, OutgoingEvent outgoing)
    {
        lock (CursorsGate)
        {
            if (!_cursors.TryGetValue(channel, out var cursor))
            {
                return false;
            }

            var frame = outgoing.Frame(Format);
            var (seq, epoch) = (outgoing.Seq, outgoing.Epoch);
            if (cursor.Buffered is { } buffered)
            {
                if (buffered.Count >= ChannelCursor.MaxBuffered)
                {
                    Services.Metrics.SlowConsumer("close");
                    LogSlowConsumer(Id, Queue.QueuedBytes);
                    RequestClose(CloseCodes.SlowConsumer, "slow consumer", dropQueued: true);
                    return false;
                }

                frame.AddReference();
                buffered.Add(new BufferedEvent(frame, seq, epoch, outgoing.ReceivedAt, outgoing.Envelope.PublishedAtUnixMs));
                return false;
            }

            if (cursor.Suspended || !HasRoomFor(channel, cursor, frame, seq))
            {
                return false;
            }

            if (seq != 0 && cursor.Epoch == epoch && seq > cursor.LastSeq + 1)
            {
                // Events between the last one sent and this one never reached this node (its
                // route was missing for a moment). Fill them from history before going on.
                frame.AddReference();
                cursor.Buffered = [new BufferedEvent(frame, seq, epoch, outgoing.ReceivedAt, outgoing.Envelope.PublishedAtUnixMs)];
                _ = FillGapAsync(channel, cursor, cursor.LastSeq, seq - 1, epoch);
                return false;
            }

            if (!Advance(channel, cursor, seq, epoch))
            {
                return false;
            }

            return TryQueue(Queued(frame, positioned: seq != 0, outgoing.ReceivedAt, outgoing.Envelope.PublishedAtUnixMs));
        }
    }

    public void CatchUp(string channel, ChannelPosition head)
    {
        lock (CursorsGate)
        {
            if (_cursors.TryGetValue(channel, out var cursor) && cursor.Buffered is null
                && cursor.Epoch == head.Epoch && head.Seq > cursor.LastSeq)
            {
                cursor.Buffered = [];
                _ = FillGapAsync(channel, cursor, cursor.LastSeq, head.Seq, head.Epoch);
            }
        }
    }

    /// <summary>Closes the session from outside (an operator's disconnect): the client reconnects and resumes.</summary>
    public void Disconnect(int code, string reason) => RequestClose(code, reason, dropQueued: false);

    /// <summary>The subject's sessions were revoked: say so, then close with 4003.</summary>
    public void Revoke(string reason)
    {
        Send(Frames.AuthRevoked(reason));
        RequestClose(CloseCodes.Revoked, "sessions revoked", dropQueued: false);
    }

    /// <summary>The subject may no longer use <paramref name="channel"/>: end that subscription and say so.</summary>
    public async Task RevokeChannelAsync(string channel)
    {
        if (await UnsubscribeAsync(channel))
        {
            Send(Frames.ChannelAccessRevoked(channel));
        }
    }

    /// <summary>
    /// After the identity changed (a refresh), ends the subscriptions its grants no longer cover,
    /// with <c>channel.access.revoked</c>.
    /// </summary>
    protected async Task EnforceSubscriptionsAsync()
    {
        string[] channels;
        lock (CursorsGate)
        {
            channels = [.. _cursors.Keys];
        }

        foreach (var channel in channels)
        {
            if (!await Services.Authorizer.AuthorizeAsync(Identity, ChannelAction.Subscribe, channel))
            {
                await RevokeChannelAsync(channel);
            }
        }
    }

    /// <summary>
    /// One step of the token's expiry, from the node's one sweep (<see cref="SessionExpirySweep"/>):
    /// warns once per expiry time within <c>Auth:ExpiryWarning</c> of it, and closes the session
    /// once it passed. A refresh moves the expiry, so the next step sees the new one.
    /// </summary>
    internal void CheckExpiry(DateTimeOffset now)
    {
        if (IsClosing)
        {
            return;
        }

        var expires = Identity.ExpiresAt;
        if (now >= expires)
        {
            OnTokenExpired();
            return;
        }

        if (_warnedFor != expires && now >= expires - Services.Auth.ExpiryWarning)
        {
            _warnedFor = expires;
            OnTokenExpiring(expires - now);
        }
    }

    /// <summary>The token expires soon. By default the client is told, so it can refresh.</summary>
    protected virtual void OnTokenExpiring(TimeSpan remaining) => Send(Frames.AuthExpiring(remaining));

    /// <summary>The token expired without a refresh.</summary>
    protected virtual void OnTokenExpired() => RequestClose(CloseCodes.TokenExpired, "token expired", dropQueued: false);

    /// <summary>Runs the session until its connection ends, then releases what it held (<see cref="OnEndedAsync"/>).</summary>
    /// <returns>Whether the transport ended cleanly (<see cref="EndedCleanly"/>, read before <see cref="OnEndedAsync"/>).</returns>
    public async Task<bool> RunAsync()
    {
        Services.Sessions.Add(this);
        if (Services.Drain.IsDraining)
        {
            // The node's drain may have walked the registry before this session was in it.
            BeginDrain();
        }

        Services.Metrics.Connected(Transport);
        var cleanly = false;
        try
        {
            Send(Frames.Connected(Id, Services.Node.Id));
            try
            {
                await RunTransportAsync();
            }
            catch (Exception e) when (e is System.Net.WebSockets.WebSocketException or OperationCanceledException or IOException)
            {
                // The client went away or the connection is being closed: same clean-up either way.
            }
            finally
            {
                await ReleaseSubscriptionsAsync();
                RequestClose(CloseCodes.Normal, null, dropQueued: false);
            }

            var writer = WriterDone.Task;
            if (await Task.WhenAny(writer, Task.Delay(CloseTimeout * 2, CancellationToken.None)) != writer)
            {
                // The writer is stuck on a client that does not read: cut the TCP connection.
                Abort();
                await writer;
            }

            Queue.Close();
            cleanly = EndedCleanly;
        }
        finally
        {
            Services.Sessions.Remove(this);
            Services.Metrics.Disconnected(Transport, CloseCode);
            await OnEndedAsync();
        }

        return cleanly;
    }

    private TaskCompletionSource WriterDone =>
        LazyInitializer.EnsureInitialized(ref _writerDone, static () => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));

    /// <summary>Whether the transport ended with a completed close (read once the session is over).</summary>
    protected virtual bool EndedCleanly => true;

    /// <summary>
    /// Runs last, once the session is out of the registry: a transport lets go of what it holds for
    /// the connection's life here (the session's task is then all that its caller awaits).
    /// </summary>
    protected virtual ValueTask OnEndedAsync() => default;

    public virtual void Dispose()
    {
        _sessionCancellation.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <summary>What runs while the connection is open; returns when it ends (the client left or the session closed).</summary>
    protected abstract Task RunTransportAsync();

    /// <summary>Writes one queued frame; <paramref name="more"/> says whether further frames are ready (so a transport can batch before flushing).</summary>
    protected abstract ValueTask WriteAsync(QueuedFrame item, bool more);

    /// <summary>Writes whatever <see cref="WriteAsync"/> held back while more frames were coming; called when the queue is empty.</summary>
    protected virtual ValueTask FlushWritesAsync() => default;

    /// <summary>Ends the connection after the last frame was written, with the close code (for transports that have one).</summary>
    protected abstract Task CloseTransportAsync(int code, string? reason, CancellationToken cancellationToken);

    /// <summary>Cuts the connection at once: the peer did not read or did not finish closing in time.</summary>
    protected abstract void Abort();

    /// <summary>True once the transport is fully closed, so no abort is needed.</summary>
    protected abstract bool IsTransportClosed { get; }

    /// <summary>
    /// The id a transport attaches to a frame that moved this session's position (SSE: the
    /// stream cursor); null when the transport has none. Called under <see cref="CursorsGate"/>.
    /// </summary>
    protected virtual string? PositionId() => null;

    /// <summary>
    /// The client fell too far behind on a channel and its live delivery stopped. By default it
    /// is sent <c>resync</c> (<c>slow_consumer</c>) with its own last position and catches up by
    /// subscribing again with <c>since</c>. Called under <see cref="CursorsGate"/>.
    /// </summary>
    protected virtual void OnFellBehind(string channel, ChannelCursor cursor)
    {
        Services.Metrics.Resync("slow_consumer");
        Send(Frames.Resync(channel, "slow_consumer", new ChannelPosition(cursor.Epoch, cursor.LastSeq)));
    }

    /// <summary>
    /// Subscribes to a channel: registers the route, reads the head, replays from
    /// <paramref name="since"/> (or answers <c>resync</c>), then goes live. Live events that arrive
    /// meanwhile are held and sent after the replay, minus duplicates: the client sees one
    /// gap-free, ordered stream.
    /// </summary>
    /// <returns>The channel's head when it went live; null when the subscribe failed (an error frame was sent).</returns>
    protected async Task<ChannelPosition?> SubscribeAsync(string? requestId, string channel, ChannelPosition? since)
    {
        ChannelCursor cursor;
        lock (CursorsGate)
        {
            if (_cursors.TryGetValue(channel, out var existing))
            {
                if (!existing.Suspended)
                {
                    // Already live: subscribing again changes nothing.
                    Send(Frames.Ok(requestId, channel));
                    return new ChannelPosition(existing.Epoch, existing.LastSeq);
                }

                // Catching up after a slow_consumer resync: start over from the client's position.
                ReleaseBuffered(existing);
                _cursors.Remove(channel);
                Services.Metrics.Subscriptions(-1);
            }

            if (_cursors.Count >= Services.Options.MaxChannelsPerConnection)
            {
                SendError(requestId, ErrorCodes.TooManyChannels, $"At most {Services.Options.MaxChannelsPerConnection} channels per connection.");
                return null;
            }

            // Live events are held from the moment the route exists until the replay is out.
            cursor = new ChannelCursor();
            _cursors[channel] = cursor;
        }

        Services.Metrics.Subscriptions(1);

        ChannelPosition head;
        ReplayResult replay;
        try
        {
            // Route first, position second: every event after this position reaches this node.
            await Services.Hub.SubscribeAsync(channel, this);
            (head, replay) = await Services.History.SubscribeReadAsync(channel, since);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            await AbandonSubscribeAsync(requestId, channel, cursor, "The routing table is unavailable; retry.");
            return null;
        }

        lock (CursorsGate)
        {
            cursor.Epoch = head.Epoch;
            cursor.LastSeq = replay.Events is null ? head.Seq : since!.Value.Seq;
            if (since is { } requested && replay.Events is null)
            {
                // The position cannot be served: say so rather than leave a silent gap.
                var reason = requested.Epoch != head.Epoch ? "epoch_changed" : requested.Seq > head.Seq ? "unknown_position" : replay.Refusal ?? ChannelHistory.BeyondRetention;
                Services.Metrics.Resync(reason);
                Send(Frames.Resync(channel, reason, head), positioned: true);
            }
        }

        await using (var rest = replay.Rest)
        {
            try
            {
                var page = replay.Events;
                while (page is not null)
                {
                    await ReplayPageAsync(channel, cursor, page, head.Epoch);
                    page = rest is null ? null : await rest.NextAsync(SessionClosing);
                }
            }
            catch (ReplayRefusedException refused)
            {
                // The log lost the rest while it was being sent (retention): the client has what
                // was sent and must reload from the head, as if it had been refused at once.
                lock (CursorsGate)
                {
                    cursor.LastSeq = Math.Max(cursor.LastSeq, head.Seq);
                    Services.Metrics.Resync(refused.Reason);
                    Send(Frames.Resync(channel, refused.Reason, head), positioned: true);
                }
            }
            catch (Exception e) when (e is RedisException or TimeoutException)
            {
                // What was sent stays sent; the client subscribes again from its last event.
                await AbandonSubscribeAsync(requestId, channel, cursor, "The channel's history is unavailable; retry.");
                return null;
            }
        }

        lock (CursorsGate)
        {
            cursor.LastSeq = Math.Max(cursor.LastSeq, head.Seq);
            Send(Frames.Ok(requestId, channel, head), positioned: true);
            DrainBuffered(channel, cursor);
        }

        return head;
    }

    /// <summary>A subscribe that could not finish: no cursor, no route, and an <c>unavailable</c> error the client retries on.</summary>
    private async Task AbandonSubscribeAsync(string? requestId, string channel, ChannelCursor cursor, string message)
    {
        lock (CursorsGate)
        {
            ReleaseBuffered(cursor);
            _cursors.Remove(channel);
        }

        Services.Metrics.Subscriptions(-1);
        await RemoveRouteAsync(channel);
        SendError(requestId, ErrorCodes.Unavailable, message);
    }

    /// <summary>
    /// Queues one page of a replay, paced by the client's own reading so a long replay never
    /// overflows its send queue, and starts the writer a slice at a time: the writer sends a
    /// slice in one write.
    /// </summary>
    private async Task ReplayPageAsync(string channel, ChannelCursor cursor, List<ReplayedEvent> page, string epoch)
    {
        var unwritten = 0;
        foreach (var replayed in page)
        {
            if (unwritten == ReplaySlice || Queue.QueuedBytes > Queue.LimitBytes / 2)
            {
                StartWrites();
                unwritten = 0;
                await Queue.WaitForRoomAsync(SessionClosing);
            }

            lock (CursorsGate)
            {
                if (Advance(channel, cursor, replayed.Seq, epoch))
                {
                    SendLater(Frames.Event(replayed.Envelope, replayed.Seq, epoch), positioned: true);
                    unwritten++;
                }
            }
        }

        StartWrites();
    }

    /// <returns>False when the session was not subscribed to the channel.</returns>
    protected async Task<bool> UnsubscribeAsync(string channel)
    {
        lock (CursorsGate)
        {
            if (!_cursors.Remove(channel, out var cursor))
            {
                return false;
            }

            ReleaseBuffered(cursor);
        }

        Services.Metrics.Subscriptions(-1);
        await RemoveRouteAsync(channel);
        return true;
    }

    protected void SendError(string? id, string code, string message) =>
        Send(Frames.Error(id, code, message));

    /// <summary>Queues a frame created for this connection alone and drops the creator's reference.</summary>
    protected void Send(SharedFrame frame, bool positioned = false)
    {
        Enqueue(frame, positioned);
        frame.Release();
    }

    /// <summary>
    /// Queues a frame created for this connection alone without starting the writer, and drops
    /// the creator's reference: the caller starts the writer once for a run of frames
    /// (<see cref="StartWrites"/>), so they go out together instead of one write each.
    /// </summary>
    private void SendLater(SharedFrame frame, bool positioned)
    {
        TryQueue(Queued(frame, positioned, 0, 0));
        frame.Release();
    }

    /// <summary>Queues a frame; one that fits no more means the client is not reading: it is closed as slow.</summary>
    protected void Enqueue(QueuedFrame item)
    {
        if (TryQueue(item))
        {
            Pump();
        }
    }

    /// <summary>Queues a frame without starting the writer; false (and the client closed as slow) when it fits no more.</summary>
    private bool TryQueue(QueuedFrame item)
    {
        if (Queue.TryEnqueue(item))
        {
            return true;
        }

        if (!IsClosing)
        {
            Services.Metrics.SlowConsumer("close");
            LogSlowConsumer(Id, Queue.QueuedBytes);
            RequestClose(CloseCodes.SlowConsumer, "slow consumer", dropQueued: true);
        }

        return false;
    }

    protected void RequestClose(int code, string? reason, bool dropQueued)
    {
        if (Interlocked.CompareExchange(ref _closeCode, code, 0) != 0)
        {
            return;
        }

        _closeReason = reason;
        if (dropQueued)
        {
            Queue.Close();
        }
        else
        {
            Queue.Complete();
        }

        // An idle writer learns of the end here: it sends what is left, then the close.
        Pump();
        try
        {
            _sessionCancellation.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }

        _ = AbortIfStillOpenAsync();
    }

    private void Enqueue(SharedFrame frame, bool positioned, long receivedAt = 0, long publishedAtMs = 0) =>
        Enqueue(Queued(frame, positioned, receivedAt, publishedAtMs));

    /// <summary>A frame as its queue holds it; a positioned one carries this transport's position id.</summary>
    private QueuedFrame Queued(SharedFrame frame, bool positioned, long receivedAt, long publishedAtMs) =>
        new(frame, positioned ? PositionId() : null, false, receivedAt, publishedAtMs);

    /// <summary>
    /// Backpressure in tiers, before the hard limit closes the connection: past half the send
    /// queue transient events are dropped; past three quarters live delivery of the channel stops
    /// (<see cref="OnFellBehind"/>). Called under the lock.
    /// </summary>
    private bool HasRoomFor(string channel, ChannelCursor cursor, SharedFrame frame, ulong seq)
    {
        var limit = Queue.LimitBytes;
        var queued = Queue.QueuedBytes + frame.Length;
        if (seq == 0)
        {
            if (queued <= limit / 2)
            {
                return true;
            }

            Services.Metrics.SlowConsumer("drop_transient");
            return false;
        }

        if (queued <= limit / 4 * 3)
        {
            return true;
        }

        Services.Metrics.SlowConsumer("resync");
        cursor.Suspended = true;
        LogSuspended(Id, channel);
        OnFellBehind(channel, cursor);
        return false;
    }

    private async Task FillGapAsync(string channel, ChannelCursor cursor, ulong after, ulong upTo, string epoch)
    {
        List<ReplayedEvent>? missing = null;
        try
        {
            missing = (await Services.History.ReadAsync(channel, after, upTo)).Events;
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            LogGapFillFailed(Id, e.Message);
        }

        lock (CursorsGate)
        {
            if (!_cursors.TryGetValue(channel, out var current) || current != cursor)
            {
                // Unsubscribed meanwhile; ReleaseBuffered ran then.
                return;
            }

            if (missing is null)
            {
                cursor.LastSeq = upTo;
                Services.Metrics.Resync("beyond_window");
                Send(Frames.Resync(channel, "beyond_window", new ChannelPosition(epoch, upTo)), positioned: true);
            }
            else
            {
                foreach (var replayed in missing)
                {
                    if (Advance(channel, cursor, replayed.Seq, epoch))
                    {
                        SendLater(Frames.Event(replayed.Envelope, replayed.Seq, epoch), positioned: true);
                    }
                }
            }

            DrainBuffered(channel, cursor);
            StartWrites();
        }
    }

    /// <summary>Sends what was held during a replay or gap fill, minus what was already sent, and goes live. Called under the lock.</summary>
    private void DrainBuffered(string channel, ChannelCursor cursor)
    {
        var buffered = cursor.Buffered!;
        cursor.Buffered = null;
        foreach (var (live, seq, epoch, receivedAt, publishedAt) in buffered)
        {
            if (Advance(channel, cursor, seq, epoch))
            {
                Enqueue(live, positioned: seq != 0, receivedAt, publishedAt);
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
            cursor.Epoch = epoch;
            cursor.LastSeq = seq - 1;
            Services.Metrics.Resync("epoch_changed");
            Send(Frames.Resync(channel, "epoch_changed", new ChannelPosition(epoch, seq - 1)), positioned: true);
        }

        cursor.Epoch = epoch;
        if (seq <= cursor.LastSeq)
        {
            return false;
        }

        cursor.LastSeq = seq;
        return true;
    }

    private static void ReleaseBuffered(ChannelCursor cursor)
    {
        foreach (var (frame, _, _, _, _) in cursor.Buffered ?? [])
        {
            frame.Release();
        }

        cursor.Buffered = null;
    }

    /// <summary>The node is stopping: tell the client when to leave, and close it then. Acts once.</summary>
    internal void BeginDrain()
    {
        if (Interlocked.Exchange(ref _draining, 1) != 0)
        {
            return;
        }

        var delay = Services.Drain.NextDelay();
        Send(Frames.Reconnect("shutdown", delay));
        _ = Task.Delay(delay).ContinueWith(
            _ => RequestClose(CloseCodes.GoingAway, "server shutting down", dropQueued: false),
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }

    /// <summary>
    /// Writes what is queued, one writer at a time. The thread that queued a frame writes it (and
    /// whatever else is queued) for as long as the transport takes frames without waiting, the
    /// usual case while its buffer has room: an event reaches the socket with no hop through the
    /// thread pool, which is most of the cost of a delivery. The first write that has to wait
    /// continues asynchronously, and frames queued meanwhile are left to that writer.
    /// </summary>
    private void Pump()
    {
        if (_writerStopped || Interlocked.CompareExchange(ref _pumping, 1, 0) != 0)
        {
            return;
        }

        _ = PumpAsync();
    }

    private async Task PumpAsync()
    {
        try
        {
            while (true)
            {
                while (Queue.TryDequeue(out var item))
                {
                    try
                    {
                        // The item is counted until it is sent: anything beyond it is another frame waiting.
                        await WriteAsync(item, more: Queue.QueuedBytes > item.Size);
                        Services.Metrics.FrameOut(item.Frame.Length);
                        if (item.ReceivedAt != 0)
                        {
                            Services.Latency.RecordSinceTimestamp(DeliveryHop.NodeToSocket, item.ReceivedAt);
                            Services.Latency.RecordSince(DeliveryHop.EndToEnd, item.PublishedAtMs);
                        }
                    }
                    finally
                    {
                        Queue.Sent(item);
                    }
                }

                await FlushWritesAsync();
                if (Queue.IsDrained)
                {
                    // Everything was sent and nothing more will come. The writer stays taken; the
                    // close runs on the thread pool, never inside whoever queued the last frame.
                    _writerStopped = true;
                    _ = Task.Run(CloseWriterAsync, CancellationToken.None);
                    return;
                }

                Volatile.Write(ref _pumping, 0);
                // A frame queued after the last read found the writer taken and left it to us.
                if (!Queue.NeedsWriter || Interlocked.CompareExchange(ref _pumping, 1, 0) != 0)
                {
                    return;
                }
            }
        }
        catch (Exception e) when (e is System.Net.WebSockets.WebSocketException or OperationCanceledException or IOException or ObjectDisposedException or InvalidOperationException)
        {
            // The peer is gone; nothing left to send to.
            _writerStopped = true;
            LogWriterEnded(Id, e.GetType().Name, e.Message);
            WriterDone.TrySetResult();
        }
    }

    private async Task CloseWriterAsync()
    {
        try
        {
            using var timeout = new CancellationTokenSource(CloseTimeout);
            var code = CloseCode;
            await CloseTransportAsync(code == 0 ? CloseCodes.Normal : code, _closeReason, timeout.Token);
        }
        catch (Exception e) when (e is System.Net.WebSockets.WebSocketException or OperationCanceledException or IOException or ObjectDisposedException or InvalidOperationException)
        {
            LogWriterEnded(Id, e.GetType().Name, e.Message);
        }
        finally
        {
            WriterDone.TrySetResult();
        }
    }

    /// <summary>A peer that does not complete the close in time is cut off.</summary>
    private async Task AbortIfStillOpenAsync()
    {
        await Task.Delay(CloseTimeout * 2, CancellationToken.None);
        if (!IsTransportClosed)
        {
            Abort();
        }
    }

    private async Task ReleaseSubscriptionsAsync()
    {
        string[] channels;
        lock (CursorsGate)
        {
            channels = [.. _cursors.Keys];
            foreach (var cursor in _cursors.Values)
            {
                ReleaseBuffered(cursor);
            }

            _cursors.Clear();
        }

        Services.Metrics.Subscriptions(-channels.Length);
        foreach (var channel in channels)
        {
            await RemoveRouteAsync(channel);
        }
    }

    private async Task RemoveRouteAsync(string channel)
    {
        try
        {
            await Services.Hub.UnsubscribeAsync(channel, this).WaitAsync(CloseTimeout * 2);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            // Locally unsubscribed either way; the stale route is cleared at the node's next start.
            LogRouteRemovalFailed(e.Message);
        }
    }

    [LoggerMessage(EventId = 4000, Level = LogLevel.Warning, Message = "Connection {ConnectionId} is a slow consumer ({QueuedBytes} bytes queued); closing with 4008")]
    private partial void LogSlowConsumer(string connectionId, long queuedBytes);

    [LoggerMessage(EventId = 4004, Level = LogLevel.Information, Message = "Connection {ConnectionId} fell behind on {Channel}: live delivery stopped")]
    private partial void LogSuspended(string connectionId, string channel);

    [LoggerMessage(EventId = 4003, Level = LogLevel.Warning, Message = "Gap fill on connection {ConnectionId} failed: {Reason}")]
    private partial void LogGapFillFailed(string connectionId, string reason);

    [LoggerMessage(EventId = 4005, Level = LogLevel.Warning, Message = "Writer of connection {ConnectionId} ended: {Kind}: {Reason}")]
    private partial void LogWriterEnded(string connectionId, string kind, string reason);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Warning, Message = "Could not remove a route: {Reason}")]
    private partial void LogRouteRemovalFailed(string reason);
}

/// <summary>What every connection of a node shares (one instance per node).</summary>
internal sealed record ConnectionServices(
    ChannelHub Hub,
    TokenValidator Tokens,
    ChannelAuthorizer Authorizer,
    AuthOptions Auth,
    UserLimits UserLimits,
    ChannelHistory History,
    EventPublisher Publisher,
    DrainCoordinator Drain,
    EventFactory Events,
    NodeIdentity Node,
    SessionRegistry Sessions,
    GatewayMetrics Metrics,
    DeliveryLatency Latency,
    GatewayOptions Options,
    ILogger Logger);
