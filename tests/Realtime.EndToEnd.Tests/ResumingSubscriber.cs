using System.Collections.Concurrent;
using System.Text.Json.Nodes;

namespace Realtime.EndToEnd.Tests;

/// <summary>
/// A client that behaves as the protocol asks: it remembers the last position it saw per
/// channel and, when it reconnects (to any node), resumes every channel with <c>since</c>.
/// Everything it receives goes into a <see cref="DeliveryAudit"/>.
/// </summary>
public sealed class ResumingSubscriber : IAsyncDisposable
{
    private readonly LocalPipeline _pipeline;
    private readonly DeliveryAudit _audit;
    private readonly ConcurrentDictionary<string, (string Epoch, ulong Seq)> _positions = new();
    private TestClient? _client;
    private Task _pump = Task.CompletedTask;

    private ResumingSubscriber(LocalPipeline pipeline, string name, string[] channels, DeliveryAudit audit)
    {
        _pipeline = pipeline;
        Name = name;
        Channels = channels;
        _audit = audit;
    }

    public string Name { get; }

    public string[] Channels { get; }

    public int Resyncs { get; private set; }

    /// <summary>How many of its connections ended with a <c>reconnect</c> frame from the server first.</summary>
    public int ReconnectHints { get; private set; }

    /// <summary>How the server closed its previous connection, if it did.</summary>
    public System.Net.WebSockets.WebSocketCloseStatus? LastCloseStatus { get; private set; }

    public static async Task<ResumingSubscriber> StartAsync(LocalPipeline pipeline, int gateway, string name, string[] channels, DeliveryAudit audit)
    {
        var subscriber = new ResumingSubscriber(pipeline, name, channels, audit);
        await subscriber.ConnectAsync(gateway);
        return subscriber;
    }

    /// <summary>Completes when the current connection has ended (e.g. its gateway died).</summary>
    public Task Disconnected => _pump;

    /// <summary>Connects to <paramref name="gateway"/> and subscribes every channel, resuming from the last position seen.</summary>
    public async Task ConnectAsync(int gateway)
    {
        if (_client is not null)
        {
            ReconnectHints += _client.Other.Count(f => (string?)f["type"] == "reconnect");
            LastCloseStatus = _client.CloseStatus;
            await _client.DisposeAsync();
            await _pump;
        }

        var client = await _pipeline.ConnectAsync(gateway, Name, "room:*");
        _client = client;
        _pump = Task.Run(async () =>
        {
            await foreach (var frame in client.EventsUntilClosed())
            {
                _audit.Received(Name, frame);
                _positions[(string)frame["channel"]!] = ((string)frame["epoch"]!, (ulong)frame["seq"]!);
            }
        });

        foreach (var channel in Channels)
        {
            var request = new JsonObject { ["type"] = "subscribe", ["channel"] = channel };
            if (_positions.TryGetValue(channel, out var since))
            {
                request["since"] = new JsonObject { ["epoch"] = since.Epoch, ["seq"] = since.Seq };
            }

            var ok = await client.RequestAsync(request, TimeSpan.FromSeconds(30));
            if ((string?)ok["type"] != "ok")
            {
                throw new InvalidOperationException($"subscribe failed: {ok.ToJsonString()}");
            }

            _positions.TryAdd(channel, ((string)ok["epoch"]!, (ulong)ok["seq"]!));
        }

        Resyncs += client.Other.Count(f => (string?)f["type"] == "resync");
    }

    /// <summary>Cuts the connection from the client side, as a network drop would.</summary>
    public async Task DropAsync()
    {
        if (_client is not null)
        {
            await _client.DisposeAsync();
            await _pump;
            _client = null;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_client is not null)
        {
            await _client.DisposeAsync();
        }

        await _pump.WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }
}
