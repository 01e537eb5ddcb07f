using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;
using Realtime.Gateway.Auth;

namespace Realtime.Gateway.Connections.Upgrade;

/// <summary>
/// Takes WebSocket handshakes on <c>/ws</c> off the HTTP port's connections before Kestrel's
/// HTTP/1.1 layer sees them (a connection middleware), runs the same checks as the endpoint, and
/// runs the WebSocket straight on the connection's transport. Every other request, and any
/// handshake it does not find plain and well-formed, goes on to Kestrel untouched.
/// </summary>
/// <remarks>
/// Why: an upgraded request on Kestrel's path keeps its whole HTTP/1.1 request alive for the life
/// of the WebSocket (the connection's parser, request and response headers, the HttpContext and
/// its features, the request's Activity and log scope, the request body and upgrade streams with
/// their state machines): about 7 KB of a 16.7 KB idle connection in a heap dump of W1
/// (docs/benchmarks.md, change 23). Here the handshake's HttpContext is dropped once the
/// WebSocket is accepted. TLS, the socket and its pipes, the connection limits and graceful
/// shutdown stay Kestrel's; the handshake's answers (status codes, bodies, headers) are the ones
/// <see cref="WebSocketAcceptor"/> gives on either path. On a plain-http port most handshakes
/// never reach this middleware: <see cref="DirectSocketTransport"/> takes them off the accepted
/// socket first and runs the same handshake through <see cref="HandshakeOnSocketAsync"/>, with
/// no Kestrel connection at all.
/// </remarks>
internal sealed partial class DirectWebSocketUpgrade(IServiceProvider services, DirectWebSocketUpgrade.Limits limits, bool https)
{
    private WebSocketAcceptor? _acceptor;
    private OriginPolicy? _origins;
    private ILogger? _logger;

    /// <summary>How long and how large a connection's first request may be before Kestrel judges it instead.</summary>
    /// <param name="FirstByteTimeout">Silence allowed before the first byte (Kestrel's keep-alive timeout).</param>
    /// <param name="HeadTimeout">Time allowed for the whole head once it started (the request headers timeout).</param>
    /// <param name="MaxHeadBytes">The largest head read here (Kestrel's limit for request headers).</param>
    /// <param name="MaxRequestLineBytes">The longest request line taken here (Kestrel's limit for it).</param>
    public sealed record Limits(TimeSpan FirstByteTimeout, TimeSpan HeadTimeout, int MaxHeadBytes, int MaxRequestLineBytes);

    public async Task OnConnectionAsync(ConnectionContext connection, ConnectionDelegate next)
    {
        // One method, no wrapper: its state machine is what a direct WebSocket's connection holds for life.
        UpgradeHeadStatus status;
        AcceptedWebSocket? accepted = null;
        try
        {
            (status, var head) = await ReadHeadAsync(connection);
            if (status == UpgradeHeadStatus.Handled)
            {
                accepted = await HandshakeAsync(new PipeUpgradeTransport(connection), head!);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException && connection.ConnectionClosed.IsCancellationRequested)
        {
            // The client went away mid-handshake: nothing to answer and nothing to log.
            return;
        }

        switch (status)
        {
            case UpgradeHeadStatus.NotHandled:
                await next(connection);
                return;
            case UpgradeHeadStatus.Incomplete:
                // Silent or dripping past the timeouts (a slowloris): dropped, as Kestrel drops one.
                connection.Abort(new ConnectionAbortedException("The request head did not arrive in time."));
                return;
        }

        if (accepted is null)
        {
            return;
        }

        if (!await _acceptor!.RunAsync(accepted))
        {
            // Aborted or cut (unresponsive, slow, transport error): do not wait for a peer that may
            // never read what is still queued for it.
            connection.Abort(new ConnectionAbortedException("The WebSocket was aborted."));
        }
    }

    private async Task<(UpgradeHeadStatus Status, UpgradeRequestHead? Head)> ReadHeadAsync(ConnectionContext connection)
    {
        var input = connection.Transport.Input;
        using var timeout = new CancellationTokenSource(limits.FirstByteTimeout);
        var started = false;
        while (true)
        {
            ReadResult read;
            try
            {
                read = await input.ReadAsync(timeout.Token);
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested)
            {
                return (UpgradeHeadStatus.Incomplete, null);
            }

            var buffer = read.Buffer;
            if (!started && !buffer.IsEmpty)
            {
                started = true;
                timeout.CancelAfter(limits.HeadTimeout);
            }

            var status = UpgradeRequestHead.TryRead(buffer, WebSocketEndpoint.Path, limits.MaxHeadBytes, limits.MaxRequestLineBytes, out var head, out var consumed);
            if (status == UpgradeHeadStatus.Handled)
            {
                input.AdvanceTo(consumed);
                return (status, head);
            }

            if (status == UpgradeHeadStatus.Incomplete && !read.IsCompleted && !read.IsCanceled)
            {
                input.AdvanceTo(buffer.Start, buffer.End);
                continue;
            }

            // Nothing consumed and nothing marked examined: Kestrel's first read returns these bytes at once.
            input.AdvanceTo(buffer.Start);
            return (UpgradeHeadStatus.NotHandled, null);
        }
    }

    /// <summary>
    /// Runs the checks of a handshake whose head was read straight off an accepted socket
    /// (<see cref="DirectSocketTransport"/>) and accepts it on that socket; null when the client
    /// was refused (the answer is written) or went away.
    /// </summary>
    public async Task<AcceptedWebSocket?> HandshakeOnSocketAsync(Socket socket, UpgradeRequestHead head, string connectionId)
    {
        try
        {
            return await HandshakeAsync(new SocketUpgradeTransport(socket, connectionId), head);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException)
        {
            // The client went away mid-handshake: nothing to answer and nothing to log.
            return null;
        }
    }

    /// <summary>
    /// Runs a WebSocket accepted by <see cref="HandshakeOnSocketAsync"/> until it ends. Its socket
    /// is closed with it: the session disposes the WebSocket, which disposes its stream.
    /// </summary>
    public Task<bool> RunOnSocketAsync(AcceptedWebSocket accepted) => _acceptor!.RunAsync(accepted);

    private async Task<AcceptedWebSocket?> HandshakeAsync(UpgradeTransport connection, UpgradeRequestHead head)
    {
        _acceptor ??= services.GetRequiredService<WebSocketAcceptor>();
        _origins ??= services.GetRequiredService<OriginPolicy>();
        _logger ??= services.GetRequiredService<ILoggerFactory>().CreateLogger<DirectWebSocketUpgrade>();

        var features = new FeatureCollection();
        features.Set<IHttpRequestFeature>(new HttpRequestFeature
        {
            Protocol = "HTTP/1.1",
            Scheme = https ? "https" : "http",
            Method = HttpMethods.Get,
            Path = head.Path,
            QueryString = head.QueryString,
            RawTarget = head.RawTarget,
            Headers = head.Headers,
        });
        var response = new HttpResponseFeature();
        features.Set<IHttpResponseFeature>(response);
        using var body = new MemoryStream();
        features.Set<IHttpResponseBodyFeature>(new StreamResponseBodyFeature(body));
        var remote = connection.RemoteEndPoint as IPEndPoint;
        var local = connection.LocalEndPoint as IPEndPoint;
        features.Set<IHttpConnectionFeature>(new HttpConnectionFeature
        {
            ConnectionId = connection.ConnectionId,
            RemoteIpAddress = remote?.Address,
            RemotePort = remote?.Port ?? 0,
            LocalIpAddress = local?.Address,
            LocalPort = local?.Port ?? 0,
        });
        features.Set<IHttpRequestLifetimeFeature>(new HttpRequestLifetimeFeature { RequestAborted = connection.Closed });
        features.Set<IServiceProvidersFeature>(new ServiceProvidersFeature { RequestServices = services });
        var webSocket = new DirectWebSocketFeature(connection, head, response.Headers);
        features.Set<IHttpWebSocketFeature>(webSocket);
        features.Set<IKeepAliveStreamFeature>(webSocket);
        var context = new DefaultHttpContext(features);

        AcceptedWebSocket? accepted = null;
        try
        {
            if (await _origins.ApplyAsync(context))
            {
                accepted = await _acceptor.AcceptAsync(context);
            }
        }
        catch (Exception e) when (e is not OperationCanceledException && webSocket.Stream is null)
        {
            // What Kestrel does with an unhandled exception before the response started.
            LogHandshakeFailed(_logger, e);
            response.Headers.Clear();
            response.StatusCode = StatusCodes.Status500InternalServerError;
            body.SetLength(0);
        }

        if (accepted is null && webSocket.Stream is null)
        {
            var bytes = body.GetBuffer().AsMemory(0, (int)body.Length);
            await connection.WriteAsync(ResponseHead.Encode(response.StatusCode, response.Headers, bytes.Length));
            await connection.WriteAsync(bytes);
        }

        return accepted;
    }

    [LoggerMessage(EventId = 5004, Level = LogLevel.Error, Message = "WebSocket handshake failed")]
    private static partial void LogHandshakeFailed(ILogger logger, Exception exception);
}
