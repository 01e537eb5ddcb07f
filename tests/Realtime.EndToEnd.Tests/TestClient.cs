using System.Collections.Concurrent;
using System.Net;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;

namespace Realtime.EndToEnd.Tests;

/// <summary>
/// A WebSocket client of the JSON protocol v1 for tests: replies are matched to requests by
/// id, events are queued in arrival order. Every wait is bounded.
/// </summary>
public sealed class TestClient : IAsyncDisposable
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);

    private readonly ClientWebSocket _socket;
    private readonly Channel<JsonObject> _events = Channel.CreateUnbounded<JsonObject>();
    private readonly ConcurrentDictionary<string, TaskCompletionSource<JsonObject>> _replies = new();
    private readonly TaskCompletionSource<JsonObject> _connected = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private readonly Task _receiveLoop;
    private int _nextId;

    private TestClient(ClientWebSocket socket)
    {
        _socket = socket;
        _receiveLoop = Task.Run(ReceiveLoopAsync);
    }

    public WebSocketCloseStatus? CloseStatus => _socket.CloseStatus;

    /// <summary>The extensions the server accepted in its handshake answer (e.g. permessage-deflate).</summary>
    public string NegotiatedExtensions =>
        _socket.HttpResponseHeaders?.TryGetValue("Sec-WebSocket-Extensions", out var values) == true ? string.Join(", ", values) : string.Empty;

    public JsonObject? Connected => _connected.Task.IsCompletedSuccessfully ? _connected.Task.Result : null;

    /// <summary>Unmatched frames other than events (e.g. errors without an id).</summary>
    public ConcurrentQueue<JsonObject> Other { get; } = new();

    /// <summary>
    /// Connects and waits for the <c>connected</c> frame; <paramref name="configure"/> sets further
    /// client options, e.g. a certificate validation callback for <c>wss://</c>.
    /// </summary>
    public static async Task<TestClient> ConnectAsync(Uri uri, string? token, bool offerCompression = false, Action<ClientWebSocketOptions>? configure = null, CancellationToken cancellationToken = default)
    {
        var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        configure?.Invoke(socket.Options);
        if (offerCompression)
        {
            socket.Options.DangerousDeflateOptions = new WebSocketDeflateOptions();
        }

        if (token is not null)
        {
            socket.Options.SetRequestHeader("Authorization", $"Bearer {token}");
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(DefaultTimeout);
        await socket.ConnectAsync(uri, timeout.Token);
        var client = new TestClient(socket);
        await client._connected.Task.WaitAsync(DefaultTimeout, cancellationToken);
        return client;
    }

    /// <summary>Attempts a handshake and returns the HTTP status the server answered (101 when upgraded).</summary>
    public static async Task<HttpStatusCode> HandshakeStatusAsync(Uri uri, string? authorizationHeader, string? query = null)
    {
        using var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        if (authorizationHeader is not null)
        {
            socket.Options.SetRequestHeader("Authorization", authorizationHeader);
        }

        var target = query is null ? uri : new Uri($"{uri}?{query}");
        using var timeout = new CancellationTokenSource(DefaultTimeout);
        try
        {
            await socket.ConnectAsync(target, timeout.Token);
            return socket.HttpStatusCode;
        }
        catch (WebSocketException)
        {
            return socket.HttpStatusCode;
        }
    }

    public Task<JsonObject> SubscribeAsync(string channel) =>
        RequestAsync(new JsonObject { ["type"] = "subscribe", ["channel"] = channel });

    public Task<JsonObject> UnsubscribeAsync(string channel) =>
        RequestAsync(new JsonObject { ["type"] = "unsubscribe", ["channel"] = channel });

    public Task<JsonObject> PublishAsync(string channel, JsonNode data, string eventType = "message.created") =>
        RequestAsync(new JsonObject { ["type"] = "publish", ["channel"] = channel, ["event"] = eventType, ["data"] = data });

    public Task<JsonObject> PingAsync() => RequestAsync(new JsonObject { ["type"] = "ping" });

    /// <summary>Sends a frame with a fresh id and waits for the reply carrying that id.</summary>
    public async Task<JsonObject> RequestAsync(JsonObject frame, TimeSpan? timeout = null)
    {
        var id = $"r{Interlocked.Increment(ref _nextId)}";
        frame["id"] = id;
        var reply = new TaskCompletionSource<JsonObject>(TaskCreationOptions.RunContinuationsAsynchronously);
        _replies[id] = reply;
        await SendTextAsync(frame.ToJsonString());
        return await reply.Task.WaitAsync(timeout ?? DefaultTimeout);
    }

    /// <summary>Sends a request without waiting; returns the task of its reply.</summary>
    public async Task<Task<JsonObject>> SendRequestAsync(JsonObject frame)
    {
        var id = $"r{Interlocked.Increment(ref _nextId)}";
        frame["id"] = id;
        var reply = new TaskCompletionSource<JsonObject>(TaskCreationOptions.RunContinuationsAsynchronously);
        _replies[id] = reply;
        await SendTextAsync(frame.ToJsonString());
        return reply.Task;
    }

    public async Task SendTextAsync(string text)
    {
        await _sendLock.WaitAsync();
        try
        {
            await _socket.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, true, CancellationToken.None);
        }
        finally
        {
            _sendLock.Release();
        }
    }

    public async Task<JsonObject> NextEventAsync(TimeSpan? timeout = null) =>
        await _events.Reader.ReadAsync().AsTask().WaitAsync(timeout ?? DefaultTimeout);

    /// <summary>Every event, as it arrives, until the connection ends.</summary>
    public IAsyncEnumerable<JsonObject> EventsUntilClosed(CancellationToken cancellationToken = default) =>
        _events.Reader.ReadAllAsync(cancellationToken);

    /// <summary>Takes an already received event, if any, without waiting.</summary>
    public bool TryTakeEvent(out JsonObject? frame) => _events.Reader.TryRead(out frame);

    public async Task<List<JsonObject>> TakeEventsAsync(int count, TimeSpan timeout)
    {
        var events = new List<JsonObject>(count);
        using var cancellation = new CancellationTokenSource(timeout);
        try
        {
            while (events.Count < count)
            {
                events.Add(await _events.Reader.ReadAsync(cancellation.Token));
            }
        }
        catch (OperationCanceledException)
        {
            // Return what arrived; the caller asserts on the count.
        }

        return events;
    }

    /// <summary>Waits until the server closed the connection; returns its close status.</summary>
    public async Task<WebSocketCloseStatus?> WaitClosedAsync(TimeSpan timeout)
    {
        await _receiveLoop.WaitAsync(timeout);
        return _socket.CloseStatus;
    }

    private async Task ReceiveLoopAsync()
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var count = 0;
                WebSocketReceiveResult result;
                do
                {
                    if (count == buffer.Length)
                    {
                        Array.Resize(ref buffer, buffer.Length * 2);
                    }

                    result = await _socket.ReceiveAsync(buffer.AsMemory(count).ToArraySegment(), _stop.Token);
                    count += result.Count;
                }
                while (!result.EndOfMessage);

                if (result.MessageType == WebSocketMessageType.Close)
                {
                    if (_socket.State == WebSocketState.CloseReceived)
                    {
                        await _socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
                    }

                    return;
                }

                Route(JsonNode.Parse(buffer.AsSpan(0, count))!.AsObject());
            }
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException or JsonException)
        {
        }
        finally
        {
            _events.Writer.TryComplete();
            foreach (var reply in _replies.Values)
            {
                reply.TrySetException(new WebSocketException("connection closed"));
            }

            _connected.TrySetException(new WebSocketException("connection closed before 'connected'"));
        }
    }

    private void Route(JsonObject frame)
    {
        var type = (string?)frame["type"];
        if (type == "event")
        {
            _events.Writer.TryWrite(frame);
        }
        else if (type == "connected")
        {
            _connected.TrySetResult(frame);
        }
        else if (frame["id"] is JsonValue idValue && idValue.TryGetValue<string>(out var id) && _replies.TryRemove(id, out var reply))
        {
            reply.TrySetResult(frame);
        }
        else
        {
            Other.Enqueue(frame);
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (_socket.State == WebSocketState.Open)
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                await _socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, timeout.Token);
                await _receiveLoop.WaitAsync(TimeSpan.FromSeconds(2));
            }
        }
        catch (Exception e) when (e is WebSocketException or OperationCanceledException or TimeoutException)
        {
        }

        await _stop.CancelAsync();
        _socket.Dispose();
        _stop.Dispose();
        _sendLock.Dispose();
    }
}

internal static class MemoryExtensions
{
    public static ArraySegment<byte> ToArraySegment(this Memory<byte> memory) =>
        System.Runtime.InteropServices.MemoryMarshal.TryGetArray<byte>(memory, out var segment) ? segment : throw new InvalidOperationException();
}
