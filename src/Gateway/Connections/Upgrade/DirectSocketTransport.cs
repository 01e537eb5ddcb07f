using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Threading.Channels;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;

namespace Realtime.Gateway.Connections.Upgrade;

/// <summary>
/// The transport of the plain-http HTTP port: accepts its sockets itself and takes a WebSocket
/// handshake on <c>/ws</c> straight off the socket, so that the WebSocket runs on the socket with
/// no Kestrel connection under it. Every other connection becomes a Kestrel connection, as from
/// Kestrel's own socket transport, with nothing read from it.
/// </summary>
/// <remarks>
/// <para>
/// Why: after <see cref="DirectWebSocketUpgrade"/> an idle WebSocket still held Kestrel's
/// transport: the connection with its two pipes and their segments, its receive, send and
/// connection loops, and Kestrel's bookkeeping of it (docs/benchmarks.md, change 29).
/// </para>
/// <para>
/// How a socket is judged: the first bytes are peeked (<see cref="SocketFlags.Peek"/>), not read.
/// Only a whole, plain, well-formed handshake in what has arrived (<see cref="UpgradeRequestHead"/>)
/// is taken, and exactly its head is then read off the socket; anything else (another request, a
/// head not yet whole, TLS, HTTP/2, silence past the request headers timeout) goes to Kestrel untouched,
/// where <see cref="DirectWebSocketUpgrade"/> and Kestrel's own parser and limits meet it as
/// before. Used only on a plain-http port: a TLS handshake is Kestrel's.
/// </para>
/// <para>
/// What such a WebSocket does not get from Kestrel: its connection metrics (<c>kestrel.*</c>;
/// the node's own gauges count it). Stopping waits for it as Kestrel waits for its own connections
/// (<see cref="IConnectionListener.UnbindAsync"/>), while the drain closes it
/// (<see cref="DrainCoordinator"/>); what is left when the host's shutdown time is up ends with
/// the process.
/// </para>
/// </remarks>
internal sealed partial class DirectSocketTransport(
    int port,
    DirectWebSocketUpgrade upgrade,
    DirectWebSocketUpgrade.Limits limits,
    SocketTransportOptions sockets,
    IMemoryPoolFactory<byte>? memoryPools,
    ILoggerFactory loggers) : IConnectionListenerFactory, IConnectionListenerFactorySelector
{
    // Enough for a handshake with a long token in its query.
    private const int FirstPeekBytes = 2048;

    private static readonly TimeSpan AcceptRetryDelay = TimeSpan.FromMilliseconds(100);

    private readonly SocketConnectionFactoryOptions? connectionOptions = ConnectionOptions(sockets, memoryPools, loggers);

    /// <summary>
    /// Whether the connections handed to Kestrel can be made exactly as Kestrel's own transport
    /// makes them; when not, this transport binds nothing and Kestrel's accepts everything.
    /// </summary>
    public bool IsAvailable => connectionOptions is not null;

    public bool CanBind(EndPoint endpoint) => IsAvailable && endpoint is IPEndPoint ip && ip.Port == port;

    /// <summary>
    /// Kestrel's own options for the connections it gets from here, with Kestrel's memory pool.
    /// </summary>
    /// <remarks>
    /// The public constructor of the options gives a connection a plain array pool instead of the
    /// pool Kestrel's own transport takes from its services, and with it the response body writer
    /// handed out an empty span partway through a response (every long-poll and SSE response
    /// failed with <c>ArgumentOutOfRangeException</c> from <c>BuffersExtensions.Write</c>). The pool
    /// factory is internal to Kestrel, so it is set by name; if a later Kestrel renames it, null.
    /// </remarks>
    private static SocketConnectionFactoryOptions? ConnectionOptions(SocketTransportOptions sockets, IMemoryPoolFactory<byte>? memoryPools, ILoggerFactory loggers)
    {
        var pool = typeof(SocketConnectionFactoryOptions).GetProperty("MemoryPoolFactory", BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public);
        if (memoryPools is null || pool is null || !pool.PropertyType.IsInstanceOfType(memoryPools) || pool.SetMethod is null)
        {
            LogUnavailable(loggers.CreateLogger<DirectSocketTransport>());
            return null;
        }

        var options = new SocketConnectionFactoryOptions
        {
            IOQueueCount = sockets.IOQueueCount,
            WaitForDataBeforeAllocatingBuffer = sockets.WaitForDataBeforeAllocatingBuffer,
            MaxReadBufferSize = sockets.MaxReadBufferSize,
            MaxWriteBufferSize = sockets.MaxWriteBufferSize,
            UnsafePreferInlineScheduling = sockets.UnsafePreferInlineScheduling,
        };
        pool.SetValue(options, memoryPools);
        return options;
    }

    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        var socket = sockets.CreateBoundListenSocket(endpoint);
        try
        {
            socket.Listen(sockets.Backlog);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        var factory = new SocketConnectionContextFactory(connectionOptions!, loggers.CreateLogger("Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets"));
        return new ValueTask<IConnectionListener>(new Listener(socket, factory, upgrade, limits, sockets.NoDelay, loggers.CreateLogger<DirectSocketTransport>()));
    }

    private sealed class Listener : IConnectionListener
    {
        private readonly Socket _listenSocket;
        private readonly SocketConnectionContextFactory _factory;
        private readonly DirectWebSocketUpgrade _upgrade;
        private readonly DirectWebSocketUpgrade.Limits _limits;
        private readonly bool _noDelay;
        private readonly ILogger _logger;
        // Sockets judged to be Kestrel's, in the order they were judged, until Kestrel's accept
        // loop (always waiting on it while bound) takes them: each is an open socket, so the
        // process's file limit bounds them, as it bounds Kestrel's own accepted connections.
        private readonly Channel<Socket> _forKestrel = Channel.CreateUnbounded<Socket>(new UnboundedChannelOptions { SingleReader = true });
        private readonly Task _acceptLoop;
        private readonly Action _ended;
        // One count for the process, as Kestrel's ids are: a node that listens on IPv4 and IPv6
        // has two listeners, and their connections must not share ids in logs and `connected` frames.
        private static long _connections;
        // Direct WebSockets running, and what the unbinding waits on until none is.
        private int _open;
        private TaskCompletionSource? _allEnded;

        public Listener(Socket listenSocket, SocketConnectionContextFactory factory, DirectWebSocketUpgrade upgrade, DirectWebSocketUpgrade.Limits limits, bool noDelay, ILogger logger)
        {
            _logger = logger;
            _ended = Ended;
            _listenSocket = listenSocket;
            _factory = factory;
            _upgrade = upgrade;
            _limits = limits;
            _noDelay = noDelay;
            EndPoint = listenSocket.LocalEndPoint!;
            _acceptLoop = AcceptLoopAsync();
        }

        public EndPoint EndPoint { get; }

        public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
        {
            try
            {
                var socket = await _forKestrel.Reader.ReadAsync(cancellationToken);
                return _factory.Create(socket);
            }
            catch (ChannelClosedException)
            {
                // Unbound: Kestrel stops accepting.
                return null;
            }
        }

        private async Task AcceptLoopAsync()
        {
            while (true)
            {
                Socket socket;
                try
                {
                    socket = await _listenSocket.AcceptAsync();
                }
                catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
                {
                    // Reset before it was accepted: the next one.
                    continue;
                }
                catch (Exception e) when (e is ObjectDisposedException or SocketException { SocketErrorCode: SocketError.OperationAborted or SocketError.Interrupted })
                {
                    // Unbound.
                    break;
                }
                catch (SocketException e)
                {
                    // Out of file descriptors or buffers: the listener must outlive it. What is
                    // waiting stays in the kernel's accept queue until then.
                    LogAcceptFailed(_logger, e.SocketErrorCode);
                    await Task.Delay(AcceptRetryDelay);
                    continue;
                }

                _ = JudgeAsync(socket);
            }

            _forKestrel.Writer.TryComplete();
        }

        private async Task JudgeAsync(Socket socket)
        {
            var limits = _limits;
            UpgradeRequestHead? head = null;
            var length = 0;
            byte[]? buffer = null;
            try
            {
                try
                {
                    socket.NoDelay = _noDelay;
                    using (var silence = new CancellationTokenSource(limits.HeadTimeout))
                    {
                        // Readiness, not data: nothing is taken from the socket, and a silent
                        // connection holds no buffer.
                        await socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, silence.Token);
                    }

                    // Most handshakes are a few hundred bytes: a small peek first, the largest head only if needed.
                    buffer = ArrayPool<byte>.Shared.Rent(Math.Min(FirstPeekBytes, limits.MaxHeadBytes));

                    while (true)
                    {
                        var window = Math.Min(buffer.Length, limits.MaxHeadBytes);
                        var peeked = await socket.ReceiveAsync(buffer.AsMemory(0, window), SocketFlags.Peek);
                        var arrived = new ReadOnlySequence<byte>(buffer, 0, peeked);
                        var status = UpgradeRequestHead.TryRead(arrived, WebSocketEndpoint.Path, limits.MaxHeadBytes, limits.MaxRequestLineBytes, out head, out var consumed);
                        if (status == UpgradeHeadStatus.Handled)
                        {
                            length = (int)arrived.Slice(0, consumed).Length;
                        }
                        else if (status == UpgradeHeadStatus.Incomplete && peeked == window && window < limits.MaxHeadBytes)
                        {
                            // The window was full: the rest of a long head may be there already.
                            ArrayPool<byte>.Shared.Return(buffer);
                            buffer = ArrayPool<byte>.Shared.Rent(limits.MaxHeadBytes);
                            continue;
                        }

                        break;
                    }
                }
                catch (OperationCanceledException)
                {
                    // Silent past the request headers timeout: Kestrel's keep-alive timeout judges it.
                }

                if (length == 0)
                {
                    if (!_forKestrel.Writer.TryWrite(socket))
                    {
                        socket.Dispose();
                    }

                    return;
                }

                // Writes are tried as plain sends first (SocketStream.SendAllAsync); reads stay asynchronous.
                socket.Blocking = false;

                // Exactly the head: what the client sent after it is the WebSocket's.
                for (var taken = 0; taken < length;)
                {
                    var read = await socket.ReceiveAsync(buffer!.AsMemory(taken, length - taken), SocketFlags.None);
                    if (read == 0)
                    {
                        socket.Dispose();
                        return;
                    }

                    taken += read;
                }
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                // Gone before its head was judged.
                socket.Dispose();
                return;
            }
            finally
            {
                if (buffer is not null)
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                }
            }

            AcceptedWebSocket? accepted = null;
            try
            {
                accepted = await _upgrade.HandshakeOnSocketAsync(socket, head!, ConnectionId(Interlocked.Increment(ref _connections)));
            }
            catch (Exception e)
            {
                // Never expected (the handshake answers its own errors): this connection ends, the node goes on.
                LogHandshakeFailed(_logger, e);
            }

            if (accepted is null)
            {
                SocketStream.ShutDownAndClose(socket);
                return;
            }

            // Not awaited: nothing here is kept while the WebSocket runs; the session closes the socket.
            Interlocked.Increment(ref _open);
            accepted.Ended = _ended;
            _ = _upgrade.RunOnSocketAsync(accepted);
        }

        private static string ConnectionId(long sequence) => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"direct-{sequence:x}");

        private void Ended()
        {
            if (Interlocked.Decrement(ref _open) == 0)
            {
                Volatile.Read(ref _allEnded)?.TrySetResult();
            }
        }

        /// <summary>
        /// Stops accepting, then waits (as Kestrel waits for its own connections) until the
        /// WebSockets running here have ended: the node's drain is closing them over its window,
        /// and the process must not exit under their close handshakes.
        /// </summary>
        public async ValueTask UnbindAsync(CancellationToken cancellationToken = default)
        {
            _listenSocket.Dispose();
            await _acceptLoop;
            var allEnded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Volatile.Write(ref _allEnded, allEnded);
            if (Volatile.Read(ref _open) == 0)
            {
                allEnded.TrySetResult();
            }

            try
            {
                await allEnded.Task.WaitAsync(cancellationToken);
            }
            catch (OperationCanceledException)
            {
                // Out of time: what is still open ends with the process.
            }
        }

        public async ValueTask DisposeAsync()
        {
            _listenSocket.Dispose();
            await _acceptLoop;
            // Judged for Kestrel but never taken by it (stopping).
            while (_forKestrel.Reader.TryRead(out var socket))
            {
                socket.Dispose();
            }

            _factory.Dispose();
        }
    }


    [LoggerMessage(EventId = 5006, Level = LogLevel.Warning, Message = "Gateway:DirectSocketTransport is on, but this Kestrel's socket connections cannot be made with its memory pool: Kestrel's own transport accepts every connection")]
    private static partial void LogUnavailable(ILogger logger);

    [LoggerMessage(EventId = 5007, Level = LogLevel.Warning, Message = "Accepting a connection on the HTTP port failed ({Error}); retrying")]
    private static partial void LogAcceptFailed(ILogger logger, SocketError error);

    [LoggerMessage(EventId = 5005, Level = LogLevel.Error, Message = "A direct WebSocket handshake failed")]
    private static partial void LogHandshakeFailed(ILogger logger, Exception exception);
}
