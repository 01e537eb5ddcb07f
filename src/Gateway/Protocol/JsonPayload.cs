using System.Text.Json;

namespace Realtime.Gateway.Protocol;

/// <summary>
/// Payloads published as JSON are inlined as-is into every JSON frame, so they are validated
/// once, at publish, whatever the entry point (WebSocket, HTTP, gRPC).
/// </summary>
internal static class JsonPayload
{
    public static bool IsValid(ReadOnlySpan<byte> payload)
    {
        if (payload.IsEmpty)
        {
            return false;
        }

        try
        {
            var reader = new Utf8JsonReader(payload, new JsonReaderOptions { MaxDepth = ClientFrameParser.MaxDepth });
            return reader.Read() && reader.TrySkip() && !reader.Read();
        }
        catch (JsonException)
        {
            return false;
        }
    }
}
