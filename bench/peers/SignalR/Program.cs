using Realtime.Bench.SignalRPeer;

// Benchmark peer (issue 7): ASP.NET Core SignalR scaled out with the Redis backplane, as the docs
// show it. bench/peers/peers.sh starts two of these against one redis-server:
//
//   dotnet Realtime.Bench.SignalRPeer.dll --urls http://127.0.0.1:8280 --Redis 127.0.0.1:6480
//
// Hub /hub: Subscribe(channel) joins a group, Publish(channel, payload) sends "event" to it.
// Keep-alive and timeouts are SignalR's defaults (server pings every 15 s, drops a client it has
// not heard from for 30 s); the load generator's subscribers ping every 15 s, as SignalR clients do.
var builder = WebApplication.CreateBuilder(args);

// What the `dotnet new web` template's appsettings.json sets: no per-request logs.
builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);

builder.Services.AddSignalR()
    .AddStackExchangeRedis(builder.Configuration["Redis"] ?? "127.0.0.1:6480");

var app = builder.Build();
app.MapHub<BenchHub>("/hub");
app.Run();
