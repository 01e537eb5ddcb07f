namespace Realtime.Gateway.Connections;

/// <summary>
/// A frame waiting in a send queue, with what the transport adds for this connection alone:
/// an SSE stream's event id (its cursor after this frame), or raw bytes the transport writes
/// as they are (an SSE heartbeat comment). A live event also carries when the node received it
/// (a <see cref="System.Diagnostics.Stopwatch"/> timestamp) and when it was published (Unix ms),
/// so its write can be measured; both are 0 for everything else.
/// </summary>
internal readonly record struct QueuedFrame(SharedFrame Frame, string? StreamId = null, bool Raw = false, long ReceivedAt = 0, long PublishedAtMs = 0)
{
    public int Size => Frame.Length + (StreamId?.Length ?? 0);
}

/// <summary>
/// A connection's send queue, bounded in bytes. Enqueueing never waits: a full queue means
/// the client is not keeping up, and the caller closes it instead of letting it hold memory
/// or slow anyone else down.
/// </summary>
/// <remarks>
/// One writer drains it (<see cref="ClientSession"/>'s pump), so a plain queue under a lock is
/// all it needs. A frame that finds nothing queued before it waits in a slot of its own, which is
/// how most frames go (the thread that queues one writes it at once); a queue is allocated only
/// when frames pile up behind it, and let go once all of them are taken, so an idle connection holds
/// no queue at all (a gcdump of 10,000 idle connections showed 1.7 KiB each when this was a
/// <c>Channel&lt;T&gt;</c>, and 224 bytes with a queue kept from the first frames).
/// </remarks>
internal sealed class OutboundQueue(long limitBytes)
{
    private readonly Lock _gate = new();
    // The oldest frame when _hasHead; _frames holds only frames queued after it.
    private QueuedFrame _head;
    private bool _hasHead;
    private Queue<QueuedFrame>? _frames;
    private bool _completed;
    private long _queuedBytes;
    private TaskCompletionSource? _room;

    public long LimitBytes => limitBytes;

    public long QueuedBytes => Interlocked.Read(ref _queuedBytes);

    /// <summary>True when the writer has something to do: a frame waits, or the queue was completed (the close is due).</summary>
    public bool NeedsWriter
    {
        get
        {
            lock (_gate)
            {
                return _completed || _hasHead;
            }
        }
    }

    /// <summary>True once the queue accepts nothing more and everything in it was taken.</summary>
    public bool IsDrained
    {
        get
        {
            lock (_gate)
            {
                return _completed && !_hasHead;
            }
        }
    }

    /// <summary>Queues the frame, taking a reference to it. False when the byte limit would be passed or the queue is closed.</summary>
    public bool TryEnqueue(QueuedFrame item)
    {
        var size = item.Size;
        if (Interlocked.Add(ref _queuedBytes, size) > limitBytes)
        {
            Interlocked.Add(ref _queuedBytes, -size);
            return false;
        }

        lock (_gate)
        {
            if (!_completed)
            {
                item.Frame.AddReference();
                if (!_hasHead)
                {
                    (_head, _hasHead) = (item, true);
                }
                else
                {
                    (_frames ??= new Queue<QueuedFrame>(4)).Enqueue(item);
                }

                return true;
            }
        }

        Interlocked.Add(ref _queuedBytes, -size);
        return false;
    }

    /// <summary>Takes the oldest frame; the taker sends it and then calls <see cref="Sent"/>.</summary>
    public bool TryDequeue(out QueuedFrame item)
    {
        lock (_gate)
        {
            if (_hasHead)
            {
                item = _head;
                if (_frames is not { } frames || !frames.TryDequeue(out _head))
                {
                    // Everything was taken: an idle connection keeps no queue (a burst allocates one).
                    (_head, _hasHead, _frames) = (default, false, null);
                }

                return true;
            }
        }

        item = default;
        return false;
    }

    /// <summary>Called by the writer after a frame was sent.</summary>
    public void Sent(QueuedFrame item)
    {
        var queued = Interlocked.Add(ref _queuedBytes, -item.Size);
        item.Frame.Release();
        if (queued <= limitBytes / 2 && Volatile.Read(ref _room) is { } room)
        {
            room.TrySetResult();
        }
    }

    /// <summary>
    /// Completes once the queue is at most half full: lets a producer of many frames for this
    /// connection alone (a replay) go at the pace the client reads.
    /// </summary>
    public async Task WaitForRoomAsync(CancellationToken cancellationToken)
    {
        while (QueuedBytes > limitBytes / 2)
        {
            var room = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Volatile.Write(ref _room, room);
            if (QueuedBytes <= limitBytes / 2 || IsDrained)
            {
                return;
            }

            await room.Task.WaitAsync(TimeSpan.FromSeconds(1), cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            cancellationToken.ThrowIfCancellationRequested();
        }
    }

    /// <summary>Accepts nothing more; what is queued is still sent.</summary>
    public void Complete()
    {
        lock (_gate)
        {
            _completed = true;
        }
    }

    /// <summary>Closes the queue and releases whatever was still in it.</summary>
    public void Close()
    {
        Complete();
        while (TryDequeue(out var item))
        {
            Sent(item);
        }
    }
}
