using System.Runtime.CompilerServices;

namespace Realtime.Gateway.Connections;

/// <summary>A stream that notes when it last received bytes, on <see cref="Environment.TickCount64"/>.</summary>
internal interface IReceiveClock
{
    /// <summary>When the last read that returned bytes completed (milliseconds of <see cref="Environment.TickCount64"/>).</summary>
    long LastReceived { get; }
}

/// <summary>
/// The upgraded connection's byte stream under a WebSocket, seen by the node's keep-alive sweep
/// (<see cref="WebSocketKeepAlive"/>): it notes when the client last sent anything and can slip a
/// WebSocket ping frame between the frames the WebSocket writes.
/// </summary>
/// <remarks>
/// The WebSocket's own keep-alive gives every connection a timer that fires four times per
/// interval-or-timeout (every 2.5 s with the defaults); with 10,000 idle connections those timers
/// alone kept a fifth of a core busy. One sweep over all connections does the same work without a
/// timer per connection. Server frames are not masked, so a ping is two fixed bytes; the WebSocket
/// writes each frame in one call, so serialising the calls keeps the ping between frames.
/// </remarks>
internal sealed class KeepAliveStream(Stream inner, Func<long>? clock = null) : Stream
{
    private static readonly Func<long> Milliseconds = () => Environment.TickCount64;

    /// <summary>FIN + opcode 0x9 (ping), unmasked, no payload (RFC 6455 5.5.2).</summary>
    private static readonly ReadOnlyMemory<byte> PingFrame = new byte[] { 0x89, 0x00 };

    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private readonly Func<long> _clock = clock ?? Milliseconds;
    // A stream that notes its own receive times on the same clock is read straight through: a
    // wrapper around each read would hold one more pending state machine per idle connection.
    private readonly IReceiveClock? _innerClock = clock is null ? inner as IReceiveClock : null;
    private long _lastReceived = (clock ?? Milliseconds)();
    private long _pingSentAt;
    private int _disposed;

    /// <summary>What <see cref="Check"/> found.</summary>
    public enum Liveness
    {
        /// <summary>The client sent something recently enough, or its ping is not yet overdue.</summary>
        Alive,

        /// <summary>A ping went out now.</summary>
        Pinged,

        /// <summary>Nothing came back within the timeout after a ping: the peer is gone.</summary>
        Dead,
    }

    /// <summary>When the client last sent a byte (milliseconds of the clock, <see cref="Environment.TickCount64"/> unless a test gives another).</summary>
    public long LastReceived => _innerClock?.LastReceived ?? Volatile.Read(ref _lastReceived);

    /// <summary>
    /// One step of the keep-alive: pings a client that has sent nothing for
    /// <paramref name="intervalMs"/>, and reports it dead when nothing at all came back within
    /// <paramref name="timeoutMs"/> of that ping. Called by one sweep at a time.
    /// </summary>
    public Liveness Check(long now, long intervalMs, long timeoutMs)
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            return Liveness.Alive;
        }

        var lastReceived = LastReceived;
        if (_pingSentAt != 0)
        {
            if (lastReceived < _pingSentAt)
            {
                return now - _pingSentAt >= timeoutMs ? Liveness.Dead : Liveness.Alive;
            }

            // Anything at all since the ping (its pong, a message) shows the peer is there.
            _pingSentAt = 0;
        }

        if (now - lastReceived < intervalMs || !TrySendPing())
        {
            // A frame being written holds the stream: the next sweep tries again.
            return Liveness.Alive;
        }

        _pingSentAt = now;
        return Liveness.Pinged;
    }

    private bool TrySendPing()
    {
        if (!_writeGate.Wait(0))
        {
            return false;
        }

        ValueTask write;
        try
        {
            write = inner.WriteAsync(PingFrame, CancellationToken.None);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException)
        {
            // The connection is going away; its own read or write reports that.
            _writeGate.Release();
            return false;
        }

        if (write.IsCompletedSuccessfully)
        {
            write.GetAwaiter().GetResult();
            _writeGate.Release();
        }
        else
        {
            _ = ReleaseAfterAsync(write);
        }

        return true;
    }

    private async Task ReleaseAfterAsync(ValueTask write)
    {
        try
        {
            await write.ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException or OperationCanceledException)
        {
            // As above: the connection's own loops see the failure.
        }
        finally
        {
            _writeGate.Release();
        }
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var read = inner.ReadAsync(buffer, cancellationToken);
        if (_innerClock is not null)
        {
            return read;
        }

        if (read.IsCompletedSuccessfully)
        {
            return new ValueTask<int>(Received(read.Result));
        }

        return AwaitReadAsync(read);
    }

    // Pooled: an idle connection spends its life in this await, and a box per read would be garbage.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> AwaitReadAsync(ValueTask<int> read) => Received(await read.ConfigureAwait(false));

    private int Received(int count)
    {
        if (count > 0)
        {
            Volatile.Write(ref _lastReceived, _clock());
        }

        return count;
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (!_writeGate.Wait(0, CancellationToken.None))
        {
            return WriteAfterPingAsync(buffer, cancellationToken);
        }

        ValueTask write;
        try
        {
            write = inner.WriteAsync(buffer, cancellationToken);
        }
        catch
        {
            _writeGate.Release();
            throw;
        }

        if (write.IsCompletedSuccessfully)
        {
            write.GetAwaiter().GetResult();
            _writeGate.Release();
            return default;
        }

        return ReleaseAfterWriteAsync(write);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ReleaseAfterWriteAsync(ValueTask write)
    {
        try
        {
            await write.ConfigureAwait(false);
        }
        finally
        {
            _writeGate.Release();
        }
    }

    private async ValueTask WriteAfterPingAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken)
    {
        await _writeGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await inner.WriteAsync(buffer, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _writeGate.Release();
        }
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

    public override bool CanRead => inner.CanRead;

    public override bool CanWrite => inner.CanWrite;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    // The WebSocket only uses the asynchronous members; the synchronous ones are here for the
    // Stream contract and go through the same gate.
    public override int Read(byte[] buffer, int offset, int count) => Received(inner.Read(buffer, offset, count));

    public override void Write(byte[] buffer, int offset, int count)
    {
        _writeGate.Wait();
        try
        {
            inner.Write(buffer, offset, count);
        }
        finally
        {
            _writeGate.Release();
        }
    }

    public override void Flush() => inner.Flush();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing && Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            inner.Dispose();
        }

        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            await inner.DisposeAsync().ConfigureAwait(false);
        }

        await base.DisposeAsync().ConfigureAwait(false);
    }
}
