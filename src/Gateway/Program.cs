using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Realtime.Gateway.Connections.Upgrade;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Realtime.Gateway;
using Realtime.Gateway.Admission;
using Realtime.Gateway.Auth;
using Realtime.Gateway.Connections;
using Realtime.Gateway.Control;
using Realtime.Gateway.Protocol;
using Realtime.Gateway.Delivery;
using Realtime.Gateway.Grpc;
using Realtime.Gateway.Publishing;
using Realtime.Gateway.Replay;
using Realtime.Gateway.Routing;
using Realtime.Hosting;
using Realtime.Hosting.Telemetry;
using Realtime.Gateway.Telemetry;

var builder = WebApplication.CreateBuilder(new WebApplicationOptions
{
    Args = args,
    // appsettings.json sits next to the binary, wherever the process is started from.
    ContentRootPath = AppContext.BaseDirectory,
});

// Request logging would print query strings, and browsers put their token there.
builder.Logging.AddFilter("Microsoft.AspNetCore.Hosting.Diagnostics", LogLevel.Warning);
builder.Logging.AddFilter("Microsoft.AspNetCore.Routing", LogLevel.Warning);

builder.Services.AddPipelineCore(builder.Configuration);
builder.Services.AddOptions<GatewayOptions>().Bind(builder.Configuration.GetSection(GatewayOptions.Section)).ValidateDataAnnotations().ValidateOnStart();
builder.Services.AddOptions<AuthOptions>().Bind(builder.Configuration.GetSection(AuthOptions.Section)).ValidateDataAnnotations().ValidateOnStart();
builder.Services.AddSingleton(TimeProvider.System);
builder.Services.AddSingleton(sp => new NodeIdentity(sp.GetRequiredService<IOptions<GatewayOptions>>().Value.ResolveNodeId()));
builder.Services.AddSingleton<TokenValidator>();
builder.Services.AddSingleton<AdmissionControl>();
builder.Services.AddSingleton<DrainCoordinator>();
builder.Services.AddSingleton<SessionRegistry>();
builder.Services.AddSingleton<WebSocketKeepAlive>();
builder.Services.AddSingleton<WebSocketAcceptor>();
builder.Services.AddHostedService(sp => sp.GetRequiredService<WebSocketKeepAlive>());
builder.Services.AddHostedService<SessionExpirySweep>();
builder.Services.AddSingleton<UserLimits>();
builder.Services.AddPipelineTelemetry(builder.Configuration, "realtime-gateway", PipelineTelemetry.GatewayMeter);
builder.Services.AddSingleton<GatewayMetrics>();
builder.Services.AddSingleton(sp =>
{
    var names = sp.GetRequiredService<Realtime.Contracts.PipelineNames>();
    var nodeId = sp.GetRequiredService<NodeIdentity>().Id;
    return ActivatorUtilities.CreateInstance<ConsumerLagReporter>(sp, names.NodeGroupId(nodeId), names.NodeTopic(nodeId));
});
builder.Services.AddHostedService(sp => sp.GetRequiredService<ConsumerLagReporter>());
builder.Services.AddSingleton<SigningKeys>();
builder.Services.AddSingleton<RevocationList>();
builder.Services.AddHostedService<JwksRefresher>();
builder.Services.AddSingleton<ChannelAuthorizer>();
builder.Services.AddSingleton<OriginPolicy>();
builder.Services.AddSingleton(sp => new ConnectionServices(
    sp.GetRequiredService<ChannelHub>(),
    sp.GetRequiredService<TokenValidator>(),
    sp.GetRequiredService<ChannelAuthorizer>(),
    sp.GetRequiredService<IOptions<AuthOptions>>().Value,
    sp.GetRequiredService<UserLimits>(),
    sp.GetRequiredService<ChannelHistory>(),
    sp.GetRequiredService<EventPublisher>(),
    sp.GetRequiredService<DrainCoordinator>(),
    sp.GetRequiredService<EventFactory>(),
    sp.GetRequiredService<NodeIdentity>(),
    sp.GetRequiredService<SessionRegistry>(),
    sp.GetRequiredService<GatewayMetrics>(),
    sp.GetRequiredService<DeliveryLatency>(),
    sp.GetRequiredService<IOptions<GatewayOptions>>().Value,
    sp.GetRequiredService<ILoggerFactory>().CreateLogger("Realtime.Gateway.Connections")));
builder.Services.AddSingleton<RouteRegistry>();
builder.Services.AddSingleton<ChannelHub>();
builder.Services.AddSingleton<ChannelHistory>();
builder.Services.AddSingleton<IngressReader>();
builder.Services.AddSingleton<HistoryQuery>();
builder.Services.AddSingleton<EventFactory>();
builder.Services.AddSingleton<IngressPublisher>();
builder.Services.AddSingleton<IdempotencyStore>();
builder.Services.AddSingleton<EventPublisher>();
builder.Services.AddSingleton<DeliveryStatus>();
builder.Services.AddHostedService<NodeLivenessService>();
// After the liveness service: its start clears this node's old routes, the control route included.
builder.Services.AddSingleton<RevocationService>();
builder.Services.AddHostedService(sp => sp.GetRequiredService<RevocationService>());
builder.Services.AddHostedService<NodeTopicConsumer>();
builder.Services.AddGrpc(o =>
{
    o.MaxReceiveMessageSize = 16 * 1024 * 1024;
    o.EnableDetailedErrors = false;
});
builder.Services.AddGrpcHealthChecks().AddCheck<GatewayReadiness>("gateway");
builder.Services.AddGrpcReflection();
// Stopping lasts the drain window, plus time to commit offsets and remove routes.
builder.Services.AddOptions<HostOptions>().Configure<IOptions<GatewayOptions>>((host, gateway) => host.ShutdownTimeout = gateway.Value.DrainWindow + TimeSpan.FromSeconds(15));

var gatewayOptions = builder.Configuration.GetSection(GatewayOptions.Section).Get<GatewayOptions>() ?? new GatewayOptions();
var httpEndpoint = new Uri(gatewayOptions.HttpEndpoint);
var grpcEndpoint = new Uri(gatewayOptions.GrpcEndpoint);
// For https endpoints: the certificate is read once, when Kestrel is configured at start (options
// validation has already reported a missing or unreadable one, naming the setting).
var tlsCertificate = new Lazy<(X509Certificate2 Certificate, X509Certificate2Collection Chain)>(
    () => (gatewayOptions.Tls ?? new GatewayTlsOptions()).Load());
builder.WebHost.ConfigureKestrel(kestrel =>
{
    kestrel.AddServerHeader = false;
    kestrel.Limits.MaxRequestHeadersTotalSize = 16 * 1024;
    // A client that drips its request headers (slowloris) is dropped once this runs out.
    kestrel.Limits.RequestHeadersTimeout = gatewayOptions.RequestHeadersTimeout;
    // Plain WebSocket handshakes skip Kestrel's HTTP/1.1 request state (DirectWebSocketUpgrade).
    var direct = gatewayOptions.DirectWebSocketUpgrade && !gatewayOptions.EnableCompression
        ? new DirectWebSocketUpgrade.Limits(kestrel.Limits.KeepAliveTimeout, gatewayOptions.RequestHeadersTimeout, kestrel.Limits.MaxRequestHeadersTotalSize, kestrel.Limits.MaxRequestLineSize)
        : null;
    Listen(kestrel, httpEndpoint, HttpProtocols.Http1, tlsCertificate, direct);
    // Over TLS, HTTP/2 alone is offered by ALPN (h2); over plain http it is h2c with prior knowledge.
    Listen(kestrel, grpcEndpoint, HttpProtocols.Http2, tlsCertificate, direct: null);
});

builder.WebHost.UseSockets(sockets =>
{
    sockets.Backlog = gatewayOptions.ListenBacklog;
    if (gatewayOptions.SocketSendBufferBytes > 0)
    {
        // Accepted sockets inherit the listener's send buffer: a fixed size instead of the kernel's
        // autotuning (up to 4 MiB per socket on Linux) bounds the kernel memory a client that stops
        // reading can hold, and makes it reach the send-queue tiers sooner.
        sockets.CreateBoundListenSocket = endpoint =>
        {
            var socket = Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets.SocketTransportOptions.CreateDefaultBoundListenSocket(endpoint);
            socket.SendBufferSize = gatewayOptions.SocketSendBufferBytes;
            return socket;
        };
    }
});

// After UseSockets: Kestrel tries the transport registered last first, and this one binds only the HTTP port.
if (gatewayOptions.DirectWebSocketUpgrade && gatewayOptions.DirectSocketTransport && !gatewayOptions.EnableCompression
    && httpEndpoint.Scheme == Uri.UriSchemeHttp && httpEndpoint.Port != 0 && httpEndpoint.Port != grpcEndpoint.Port)
{
    builder.Services.AddSingleton<IConnectionListenerFactory>(services =>
    {
        var limits = services.GetRequiredService<IOptions<KestrelServerOptions>>().Value.Limits;
        var direct = new DirectWebSocketUpgrade.Limits(limits.KeepAliveTimeout, gatewayOptions.RequestHeadersTimeout, limits.MaxRequestHeadersTotalSize, limits.MaxRequestLineSize);
        var sockets = services.GetRequiredService<IOptions<Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets.SocketTransportOptions>>().Value;
        return new DirectSocketTransport(
            httpEndpoint.Port,
            new DirectWebSocketUpgrade(services, direct, https: false),
            direct,
            sockets,
            services.GetService<IMemoryPoolFactory<byte>>(),
            services.GetRequiredService<ILoggerFactory>());
    });
}

var app = builder.Build();
// Created now so it sees ApplicationStopping even before the first connection.
app.Services.GetRequiredService<DrainCoordinator>();

// The gRPC port serves gRPC only and the HTTP port everything else, whatever Host header a
// proxy forwards.
var grpcPort = grpcEndpoint.Port;
app.Use((context, next) =>
{
    var onGrpcPort = context.Connection.LocalPort == grpcPort;
    var isGrpc = context.Request.ContentType?.StartsWith("application/grpc", StringComparison.Ordinal) == true;
    if (onGrpcPort != isGrpc)
    {
        context.Response.StatusCode = StatusCodes.Status404NotFound;
        return Task.CompletedTask;
    }

    return next(context);
});

// Browser pages from other origins are refused before anything else, upgrades included.
var origins = app.Services.GetRequiredService<OriginPolicy>();
app.Use(async (context, next) =>
{
    var path = context.Request.Path;
    if (path.StartsWithSegments("/ws") || path.StartsWithSegments("/v1"))
    {
        if (!await origins.ApplyAsync(context))
        {
            return;
        }
    }

    await next(context);
});

KeepAliveUpgradeFeature.UseFor(app, WebSocketEndpoint.Path);
app.UseWebSockets();
app.MapRealtimeWebSocket();
app.MapRealtimeSse();
app.MapRealtimeLongPoll();
app.MapRealtimeHttpPublish();
app.MapChannelHistory();
app.MapGrpcService<PublisherService>();
app.MapGrpcService<ChannelsService>();
app.MapGrpcService<SessionsService>();
app.MapGrpcHealthChecksService();
app.MapGrpcReflectionService();
app.MapPrometheusScrapingEndpoint();
app.MapGet("/healthz", () => Results.Text("ok"));
// Same as SIGTERM: drain, then stop. Only from the node itself (or a sidecar / kubectl exec).
app.MapPost("/admin/drain", (HttpContext context, IHostApplicationLifetime lifetime) =>
{
    if (context.Connection.RemoteIpAddress is not { } remote || !IPAddress.IsLoopback(remote))
    {
        return Results.StatusCode(StatusCodes.Status403Forbidden);
    }

    lifetime.StopApplication();
    return Results.Accepted();
});
// Ends every connection of one subject on this node (WebSocket close 4000, SSE stream ended,
// held long-poll aborted); its clients reconnect and resume. Loopback only, like drain.
app.MapPost("/admin/disconnect", (HttpContext context, string subject, SessionRegistry sessions) =>
{
    if (context.Connection.RemoteIpAddress is not { } remote || !IPAddress.IsLoopback(remote))
    {
        return Results.StatusCode(StatusCodes.Status403Forbidden);
    }

    var closed = sessions.Disconnect(subject, CloseCodes.Disconnected, "disconnected by an operator");
    return Results.Json(new { closed });
});
app.MapGet("/readyz", async (HealthCheckService health) =>
{
    var report = await health.CheckHealthAsync();
    var entry = report.Entries.Values.FirstOrDefault();
    return report.Status == HealthStatus.Healthy
        ? Results.Text($"ok {entry.Description}")
        : Results.Text(entry.Description ?? "not ready", statusCode: StatusCodes.Status503ServiceUnavailable);
});

app.Lifetime.ApplicationStarted.Register(() =>
{
    var node = app.Services.GetRequiredService<NodeIdentity>();
    Console.WriteLine($"gateway {node.Id} ready ws={WebSocketUrl(httpEndpoint)}{WebSocketEndpoint.Path} grpc={grpcEndpoint}");
});

await app.RunAsync();

static void Listen(
    KestrelServerOptions kestrel,
    Uri endpoint,
    HttpProtocols protocols,
    Lazy<(X509Certificate2 Certificate, X509Certificate2Collection Chain)> tls,
    DirectWebSocketUpgrade.Limits? direct)
{
    void Configure(ListenOptions listen)
    {
        listen.Protocols = protocols;
        var https = endpoint.Scheme == Uri.UriSchemeHttps;
        if (https)
        {
            var (certificate, chain) = tls.Value;
            listen.UseHttps(new HttpsConnectionAdapterOptions
            {
                ServerCertificate = certificate,
                ServerCertificateChain = chain,
                SslProtocols = GatewayTlsOptions.Protocols,
            });
        }

        if (direct is not null)
        {
            // After UseHttps: it sees the decrypted bytes.
            var upgrade = new DirectWebSocketUpgrade(listen.ApplicationServices, direct, https);
            listen.Use(next => connection => upgrade.OnConnectionAsync(connection, next));
        }
    }

    if (endpoint.Host is "localhost")
    {
        kestrel.ListenLocalhost(endpoint.Port, Configure);
    }
    else if (endpoint.Host is "*" or "+" or "0.0.0.0")
    {
        kestrel.ListenAnyIP(endpoint.Port, Configure);
    }
    else
    {
        kestrel.Listen(IPAddress.Parse(endpoint.Host), endpoint.Port, Configure);
    }
}

static string WebSocketUrl(Uri http) => (http.Scheme == Uri.UriSchemeHttps ? "wss://" : "ws://") + http.Authority;
