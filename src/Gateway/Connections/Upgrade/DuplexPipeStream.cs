using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;

namespace Realtime.Gateway.Connections.Upgrade;

/// <summary>
/// A connection's transport pipes as the stream under a directly upgraded WebSocket.
/// </summary>
/// <remarks>
/// A zero-byte read waits for data without taking any, which is how an idle WebSocket waits
/// holding no buffer (Kestrel's socket reader waits the same way). Disposing it (what
/// <see cref="System.Net.WebSockets.WebSocket.Abort"/> does) wakes a pending read and flush so
/// that the connection's loops end; the connection itself is closed by its owner.
/// </remarks>
internal sealed class DuplexPipeStream(IDuplexPipe transport) : DuplexStream, IReceiveClock
{
    private int _disposed;
    private long _lastReceived = Environment.TickCount64;

    /// <inheritdoc/>
    public long LastReceived => Volatile.Read(ref _lastReceived);

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var read = transport.Input.ReadAsync(cancellationToken);
        return read.IsCompletedSuccessfully ? new ValueTask<int>(Take(read.Result, buffer.Span)) : AwaitReadAsync(read, buffer);
    }

    // Pooled: an idle connection spends its life in this await, and a box per read would be garbage.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> AwaitReadAsync(ValueTask<ReadResult> read, Memory<byte> buffer) =>
        Take(await read.ConfigureAwait(false), buffer.Span);

    private int Take(ReadResult result, Span<byte> destination)
    {
        var buffer = result.Buffer;
        if (result.IsCanceled)
        {
            transport.Input.AdvanceTo(buffer.Start);
            throw new OperationCanceledException("The connection's stream was closed.");
        }

        if (destination.Length == 0 && !buffer.IsEmpty)
        {
            // A zero-byte read: data is there, none is taken, the next read returns it at once.
            transport.Input.AdvanceTo(buffer.Start);
            return 0;
        }

        var count = (int)Math.Min(buffer.Length, destination.Length);
        buffer.Slice(0, count).CopyTo(destination);
        transport.Input.AdvanceTo(buffer.GetPosition(count));
        if (count > 0)
        {
            Volatile.Write(ref _lastReceived, Environment.TickCount64);
        }

        // An empty, completed pipe is the end of the stream: 0, as a socket's orderly close.
        return count;
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var flush = transport.Output.WriteAsync(buffer, cancellationToken);
        if (flush.IsCompletedSuccessfully)
        {
            Check(flush.Result);
            return default;
        }

        return AwaitFlushAsync(flush);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private static async ValueTask AwaitFlushAsync(ValueTask<FlushResult> flush) => Check(await flush.ConfigureAwait(false));

    private static void Check(FlushResult result)
    {
        if (result.IsCanceled)
        {
            throw new OperationCanceledException("The connection's stream was closed.");
        }

        if (result.IsCompleted)
        {
            // The transport stopped reading what we write: the peer is gone.
            throw new IOException("The connection was closed.");
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing && Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            transport.Input.CancelPendingRead();
            transport.Output.CancelPendingFlush();
        }

        base.Dispose(disposing);
    }
}
