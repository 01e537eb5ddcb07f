using System.Net.WebSockets;
using Realtime.Gateway.Connections;

namespace Realtime.Gateway.Tests.Connections;

public sealed class WebSocketFrameBatchTests
{
    [Fact]
    public async Task A_client_WebSocket_reads_the_batch_back_as_the_same_messages_in_order()
    {
        // Every length form of the header: 7-bit, 16-bit (126 and the largest) and 64-bit.
        int[] lengths = [0, 1, 125, 126, 4_000, ushort.MaxValue, ushort.MaxValue + 1];
        var messages = lengths.Select((length, i) => (Type: i % 2 == 0 ? WebSocketMessageType.Text : WebSocketMessageType.Binary, Payload: Payload(length, seed: i))).ToList();
        var batch = new WebSocketFrameBatch(limitBytes: 1 << 20);
        foreach (var (type, payload) in messages)
        {
            Assert.True(batch.TryAppend(type, payload));
        }

        Assert.Equal(messages.Sum(m => WebSocketFrameBatch.SizeOf(m.Payload.Length)), batch.Length);
        using var client = WebSocket.CreateFromStream(new MemoryStream(batch.Written.ToArray()), new WebSocketCreationOptions { IsServer = false });
        foreach (var (type, payload) in messages)
        {
            var (receivedType, received) = await ReceiveMessageAsync(client);
            Assert.Equal(type, receivedType);
            Assert.Equal(payload, received);
        }

        batch.Clear();
        Assert.Equal(0, batch.Length);
        Assert.True(batch.Written.IsEmpty);
    }

    [Fact]
    public void A_message_that_would_pass_the_limit_is_refused_and_leaves_the_batch_as_it_was()
    {
        var batch = new WebSocketFrameBatch(limitBytes: 300);
        Assert.True(batch.TryAppend(WebSocketMessageType.Text, Payload(200, seed: 1)));
        var before = batch.Written.ToArray();

        // 2 header bytes + 100 would make 304.
        Assert.False(batch.TryAppend(WebSocketMessageType.Text, Payload(100, seed: 2)));
        Assert.Equal(before, batch.Written.ToArray());

        // What fits exactly still goes in.
        Assert.True(batch.TryAppend(WebSocketMessageType.Text, Payload(94, seed: 3)));
        Assert.Equal(300, batch.Length);

        // Larger than an empty batch: never batched.
        batch.Clear();
        Assert.False(batch.TryAppend(WebSocketMessageType.Binary, Payload(299, seed: 4)));
        Assert.Equal(0, batch.Length);
    }

    /// <summary>Printable ASCII: valid UTF-8, which a client checks in every text message.</summary>
    private static byte[] Payload(int length, int seed)
    {
        var random = new Random(seed);
        var bytes = new byte[length];
        for (var i = 0; i < length; i++)
        {
            bytes[i] = (byte)random.Next(0x20, 0x7F);
        }

        return bytes;
    }

    private static async Task<(WebSocketMessageType Type, byte[] Payload)> ReceiveMessageAsync(WebSocket socket)
    {
        using var message = new MemoryStream();
        var buffer = new byte[8192];
        while (true)
        {
            var result = await socket.ReceiveAsync(buffer, TestContext.Current.CancellationToken);
            message.Write(buffer, 0, result.Count);
            if (result.EndOfMessage)
            {
                return (result.MessageType, message.ToArray());
            }
        }
    }
}
