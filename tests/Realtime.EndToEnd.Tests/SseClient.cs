using System.Net;
using System.Text;
using System.Text.Json.Nodes;

namespace Realtime.EndToEnd.Tests;

/// <summary>One message of an SSE stream: its id (if any), its data joined by line, or a comment.</summary>
public sealed record SseMessage(string? Id, string? Data, string? Comment)
{
    public JsonObject Json => JsonNode.Parse(Data ?? throw new InvalidOperationException("Not a data message."))!.AsObject();
}

/// <summary>A test client for <c>GET /v1/sse</c> over a real HTTP connection, parsing the event-stream format as EventSource does.</summary>
public sealed class SseClient : IAsyncDisposable
{
    private readonly HttpClient _http;
    private readonly HttpResponseMessage _response;
    private readonly StreamReader _reader;

    private SseClient(HttpClient http, HttpResponseMessage response, StreamReader reader)
    {
        _http = http;
        _response = response;
        _reader = reader;
    }

    public HttpResponseMessage Response => _response;

    /// <summary>The last id seen, as EventSource keeps it for Last-Event-ID.</summary>
    public string? LastEventId { get; private set; }

    /// <summary>Opens a stream; a refused request is returned with its status (and no stream to read).</summary>
    public static async Task<SseClient> OpenAsync(Uri gateway, string query, string? token, string? lastEventId = null)
    {
        var http = new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(gateway, $"/v1/sse?{query}"));
        request.Headers.Accept.ParseAdd("text/event-stream");
        if (token is not null)
        {
            request.Headers.Authorization = new("Bearer", token);
        }

        if (lastEventId is not null)
        {
            request.Headers.Add("Last-Event-ID", lastEventId);
        }

        using var timeout = new CancellationTokenSource(TestClient.DefaultTimeout);
        var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
        var reader = new StreamReader(await response.Content.ReadAsStreamAsync(timeout.Token), Encoding.UTF8);
        return new SseClient(http, response, reader);
    }

    public HttpStatusCode Status => _response.StatusCode;

    /// <summary>The next message (or comment); null when the server ended the stream.</summary>
    public async Task<SseMessage?> NextAsync(TimeSpan? timeout = null)
    {
        using var cancel = new CancellationTokenSource(timeout ?? TestClient.DefaultTimeout);
        string? id = null, comment = null;
        StringBuilder? data = null;
        while (true)
        {
            var line = await _reader.ReadLineAsync(cancel.Token);
            if (line is null)
            {
                return null;
            }

            if (line.Length == 0)
            {
                if (data is null && comment is null)
                {
                    // A block with only retry: (or nothing) dispatches nothing.
                    continue;
                }

                if (id is not null)
                {
                    LastEventId = id;
                }

                return new SseMessage(id, data?.ToString(), comment);
            }

            if (line[0] == ':')
            {
                comment = line[1..];
                continue;
            }

            var colon = line.IndexOf(':', StringComparison.Ordinal);
            var field = colon < 0 ? line : line[..colon];
            var value = colon < 0 ? string.Empty : line[(colon + 1)..].TrimStart(' ');
            switch (field)
            {
                case "id":
                    id = value;
                    break;
                case "data":
                    data = data is null ? new StringBuilder(value) : data.Append('\n').Append(value);
                    break;
            }
        }
    }

    /// <summary>The next <c>data</c> message whose frame type is <paramref name="type"/>, skipping others (and comments).</summary>
    public async Task<JsonObject> NextFrameAsync(string type, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TestClient.DefaultTimeout);
        while (true)
        {
            var message = await NextAsync(deadline - DateTime.UtcNow) ?? throw new EndOfStreamException($"stream ended before a '{type}' frame");
            if (message.Data is not null && (string?)message.Json["type"] == type)
            {
                return message.Json;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _reader.Dispose();
        _response.Dispose();
        _http.Dispose();
        await Task.CompletedTask;
    }
}
