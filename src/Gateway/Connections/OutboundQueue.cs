using System.Threading.Channels;

namespace Realtime.Gateway.Connections;

/// <summary>
/// A connection's send queue, bounded in bytes. Enqueueing never waits: a full queue means
/// the client is not keeping up, and the caller closes it instead of letting it hold memory
/// or slow anyone else down.
/// </summary>
internal sealed class OutboundQueue(long limitBytes)
{
    private readonly Channel<SharedFrame> _frames = Channel.CreateUnbounded<SharedFrame>(
        new UnboundedChannelOptions { SingleReader = true, SingleWriter = false, AllowSynchronousContinuations = false });

    private long _queuedBytes;

    public long QueuedBytes => Interlocked.Read(ref _queuedBytes);

    public ChannelReader<SharedFrame> Reader => _frames.Reader;

    /// <summary>Queues the frame, taking a reference to it. False when the byte limit would be passed or the queue is closed.</summary>
    public bool TryEnqueue(SharedFrame frame)
    {
        if (Interlocked.Add(ref _queuedBytes, frame.Length) > limitBytes)
        {
            Interlocked.Add(ref _queuedBytes, -frame.Length);
            return false;
        }

        frame.AddReference();
        if (_frames.Writer.TryWrite(frame))
        {
            return true;
        }

        Interlocked.Add(ref _queuedBytes, -frame.Length);
        frame.Release();
        return false;
    }

    /// <summary>Called by the writer after a frame was sent.</summary>
    public void Sent(SharedFrame frame)
    {
        Interlocked.Add(ref _queuedBytes, -frame.Length);
        frame.Release();
    }

    /// <summary>Accepts nothing more; what is queued is still sent.</summary>
    public void Complete() => _frames.Writer.TryComplete();

    /// <summary>Closes the queue and releases whatever was still in it.</summary>
    public void Close()
    {
        _frames.Writer.TryComplete();
        while (_frames.Reader.TryRead(out var frame))
        {
            Sent(frame);
        }
    }
}
