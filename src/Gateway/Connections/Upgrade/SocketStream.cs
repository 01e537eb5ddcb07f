using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace Realtime.Gateway.Connections.Upgrade;

/// <summary>
/// An accepted socket as the stream under a WebSocket that runs without Kestrel's transport
/// (<see cref="DirectSocketTransport"/>): reads and writes are the socket's own, with no pipe
/// and no send or receive loop in between.
/// </summary>
/// <remarks>
/// A zero-byte read waits for data without taking any (epoll readiness), so an idle WebSocket
/// holds no buffer. A write goes to the kernel from the calling thread: nearly always at once,
/// since the socket's send buffer takes it. The stream owns the socket: disposing it (what
/// <see cref="System.Net.WebSockets.WebSocket.Abort"/> and the end of a close handshake do) shuts
/// the connection down and closes it, which also wakes a pending read or write. Socket errors
/// surface as <see cref="IOException"/>, as from <see cref="NetworkStream"/>, and anything after
/// disposal as <see cref="OperationCanceledException"/>, as from <see cref="DuplexPipeStream"/>
/// (except a pending zero-byte read's, which the WebSocket reports the same way whatever they are).
/// </remarks>
internal sealed class SocketStream(Socket socket) : DuplexStream, IReceiveClock
{
    private int _disposed;
    private long _lastReceived = Environment.TickCount64;

    private bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <inheritdoc/>
    public long LastReceived => Volatile.Read(ref _lastReceived);

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ValueTask<int> receive;
        try
        {
            receive = socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return ValueTask.FromException<int>(Translate(e));
        }

        if (receive.IsCompletedSuccessfully)
        {
            return new ValueTask<int>(Received(receive.Result));
        }

        // A zero-byte read (how an idle WebSocket waits) takes nothing to note and is handed back
        // as the socket's own: a wrapper would hold one more state machine per idle connection.
        // Its errors reach the WebSocket untranslated, which reports any of them the same way.
        return buffer.IsEmpty ? receive : AwaitReceiveAsync(receive);
    }

    // Pooled: every read that has to wait for its bytes comes through here, and a box per read would be garbage.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> AwaitReceiveAsync(ValueTask<int> receive)
    {
        try
        {
            var count = await receive.ConfigureAwait(false);
            // Our own shutdown ends a pending read as the peer's close would: it was disposed, not closed.
            return count == 0 && IsDisposed ? throw Closed() : Received(count);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            throw Translate(e);
        }
    }

    private int Received(int count)
    {
        if (count > 0)
        {
            Volatile.Write(ref _lastReceived, Environment.TickCount64);
        }

        // 0 for a non-empty buffer is the peer's orderly close; for a zero-byte read, data is there.
        return count;
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (IsDisposed)
        {
            return ValueTask.FromException(Closed());
        }

        return SendAllAsync(socket, buffer, this, cancellationToken);
    }

    /// <summary>Sends every byte of <paramref name="bytes"/>, however many calls that takes.</summary>
    /// <remarks>
    /// On a non-blocking socket (as <see cref="DirectSocketTransport"/> leaves the ones it keeps)
    /// the first attempt is a plain send: it nearly always takes everything, and an asynchronous
    /// send would keep an event-args object (about 360 bytes) on every socket that ever wrote.
    /// Only a send the kernel cannot take at once waits asynchronously.
    /// </remarks>
    public static ValueTask SendAllAsync(Socket socket, ReadOnlyMemory<byte> bytes, SocketStream? owner = null, CancellationToken cancellationToken = default)
    {
        try
        {
            if (!socket.Blocking)
            {
                while (!bytes.IsEmpty)
                {
                    var sent = socket.Send(bytes.Span, SocketFlags.None, out var error);
                    if (error == SocketError.WouldBlock)
                    {
                        break;
                    }

                    if (error != SocketError.Success)
                    {
                        throw new SocketException((int)error);
                    }

                    bytes = bytes[sent..];
                }
            }

            return bytes.IsEmpty ? default : AwaitSendAsync(socket, bytes, owner, cancellationToken);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            return ValueTask.FromException(Translate(e, owner));
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private static async ValueTask AwaitSendAsync(Socket socket, ReadOnlyMemory<byte> bytes, SocketStream? owner, CancellationToken cancellationToken)
    {
        try
        {
            while (!bytes.IsEmpty)
            {
                bytes = bytes[await socket.SendAsync(bytes, SocketFlags.None, cancellationToken).ConfigureAwait(false)..];
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            throw Translate(e, owner);
        }
    }

    private Exception Translate(Exception e) => Translate(e, this);

    private static Exception Translate(Exception e, SocketStream? owner) =>
        e is ObjectDisposedException || owner?.IsDisposed == true
            ? Closed()
            : new IOException(e.Message, e);

    private static OperationCanceledException Closed() => new("The connection's stream was closed.");

    protected override void Dispose(bool disposing)
    {
        if (disposing && Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            ShutDownAndClose(socket);
        }

        base.Dispose(disposing);
    }

    /// <summary>Shuts a connection down both ways (a FIN after what is queued) and closes it.</summary>
    public static void ShutDownAndClose(Socket socket)
    {
        try
        {
            socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Already reset by the peer, or closed: closing is all that is left.
        }

        socket.Dispose();
    }
}
