using System.Threading.Channels;

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
internal sealed class OutboundQueue(long limitBytes)
{
    private readonly Channel<QueuedFrame> _frames = Channel.CreateUnbounded<QueuedFrame>(
        new UnboundedChannelOptions { SingleReader = true, SingleWriter = false, AllowSynchronousContinuations = false });

    private long _queuedBytes;
    private TaskCompletionSource? _room;

    public long LimitBytes => limitBytes;

    public long QueuedBytes => Interlocked.Read(ref _queuedBytes);

    public ChannelReader<QueuedFrame> Reader => _frames.Reader;

    /// <summary>Queues the frame, taking a reference to it. False when the byte limit would be passed or the queue is closed.</summary>
    public bool TryEnqueue(QueuedFrame item)
    {
        var size = item.Size;
        if (Interlocked.Add(ref _queuedBytes, size) > limitBytes)
        {
            Interlocked.Add(ref _queuedBytes, -size);
            return false;
        }

        item.Frame.AddReference();
        if (_frames.Writer.TryWrite(item))
        {
            return true;
        }

        Interlocked.Add(ref _queuedBytes, -size);
        item.Frame.Release();
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
            if (QueuedBytes <= limitBytes / 2 || _frames.Reader.Completion.IsCompleted)
            {
                return;
            }

            await room.Task.WaitAsync(TimeSpan.FromSeconds(1), cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            cancellationToken.ThrowIfCancellationRequested();
        }
    }

    /// <summary>Accepts nothing more; what is queued is still sent.</summary>
    public void Complete() => _frames.Writer.TryComplete();

    /// <summary>Closes the queue and releases whatever was still in it.</summary>
    public void Close()
    {
        _frames.Writer.TryComplete();
        while (_frames.Reader.TryRead(out var item))
        {
            Sent(item);
        }
    }
}
