using Microsoft.Extensions.Options;
using Realtime.Fanout;
using Realtime.Fanout.Ingress;
using Realtime.Contracts;
using Realtime.Fanout.Routing;
using Realtime.Fanout.Telemetry;
using Realtime.Hosting;
using Realtime.Hosting.Telemetry;
using StackExchange.Redis;

var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
{
    Args = args,
    // appsettings.json sits next to the binary, wherever the process is started from.
    ContentRootPath = AppContext.BaseDirectory,
});
builder.Services.AddPipelineCore(builder.Configuration);
builder.Services.AddOptions<FanoutOptions>()
    .Bind(builder.Configuration.GetSection(FanoutOptions.Section))
    .ValidateDataAnnotations()
    .ValidateOnStart();
builder.Services.AddSingleton(TimeProvider.System);
builder.Services.AddSingleton<FanoutStatus>();
builder.Services.AddSingleton<ChannelSequencer>();
builder.Services.AddPipelineTelemetry(builder.Configuration, "realtime-fanout", PipelineTelemetry.FanoutMeter);
builder.Services.AddSingleton<FanoutMetrics>();
builder.Services.AddSingleton(sp =>
{
    var names = sp.GetRequiredService<PipelineNames>();
    return ActivatorUtilities.CreateInstance<ConsumerLagReporter>(sp, names.FanoutGroupId, names.IngressTopic);
});
builder.Services.AddHostedService(sp => sp.GetRequiredService<ConsumerLagReporter>());
builder.Services.AddSingleton<FanoutWorker>();
builder.Services.AddHostedService(sp => sp.GetRequiredService<FanoutWorker>());
builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(45));
builder.WebHost.UseUrls(builder.Configuration[$"{FanoutOptions.Section}:{nameof(FanoutOptions.HttpEndpoint)}"] ?? new FanoutOptions().HttpEndpoint);

var app = builder.Build();
app.MapPrometheusScrapingEndpoint();
// Pause and resume routing, from the node itself only (an operator's kubectl exec or sidecar).
foreach (var (action, pause) in new[] { ("pause", true), ("resume", false) })
{
    app.MapPost($"/admin/{action}", async (HttpContext context, Realtime.Fanout.Ingress.FanoutWorker worker) =>
    {
        if (context.Connection.RemoteIpAddress is not { } remote || !System.Net.IPAddress.IsLoopback(remote))
        {
            return Results.StatusCode(StatusCodes.Status403Forbidden);
        }

        // Answered once the consume loop has applied it: nothing is routed after a pause's 200.
        return await worker.SetPausedAsync(pause, TimeSpan.FromSeconds(10))
            ? Results.Ok()
            : Results.StatusCode(StatusCodes.Status503ServiceUnavailable);
    });
}
app.MapGet("/healthz", () => Results.Text("ok"));
// Ready: Redis answers, Kafka answers (the lag probe asks it every few seconds), the group was joined, not paused.
app.MapGet("/readyz", async (FanoutStatus status, IConnectionMultiplexer redis, ConsumerLagReporter lag, Realtime.Fanout.Ingress.FanoutWorker worker) =>
{
    if (!status.Joined)
    {
        return Results.Text("not in the consumer group yet", statusCode: StatusCodes.Status503ServiceUnavailable);
    }

    if (!lag.KafkaReachable)
    {
        return Results.Text("kafka unreachable", statusCode: StatusCodes.Status503ServiceUnavailable);
    }

    try
    {
        await redis.GetDatabase().PingAsync();
    }
    catch (RedisException)
    {
        return Results.Text("redis unreachable", statusCode: StatusCodes.Status503ServiceUnavailable);
    }

    return Results.Text($"ok partitions={status.AssignedPartitions} routed={status.RecordsRouted}{(worker.IsPaused ? " paused" : string.Empty)}");
});

app.Services.GetRequiredService<IOptions<FanoutOptions>>();
await app.RunAsync();
