using Realtime.Gateway.Connections;
using Realtime.Gateway.Connections.Upgrade;

namespace Realtime.Gateway.Tests.Connections.Upgrade;

/// <summary>
/// What a WebSocket and the keep-alive sweep need from the stream under a direct WebSocket, for
/// each transport it runs on (<see cref="DuplexPipeStreamTests"/>, <see cref="SocketStreamTests"/>).
/// </summary>
public abstract class DuplexStreamContract
{
    protected static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    private protected abstract DuplexStream Stream();

    /// <summary>The client sends these bytes.</summary>
    protected abstract ValueTask SendFromPeerAsync(byte[] bytes);

    /// <summary>The client ends its side in order (a FIN, or a completed pipe).</summary>
    protected abstract ValueTask CloseFromPeerAsync();

    /// <summary>What the client received, <paramref name="count"/> bytes of it.</summary>
    protected abstract ValueTask<byte[]> ReceiveAtPeerAsync(int count);

    [Fact]
    public async Task A_zero_byte_read_waits_for_data_and_takes_none_of_it()
    {
        using var stream = Stream();
        var waiting = stream.ReadAsync(Memory<byte>.Empty, TestContext.Current.CancellationToken).AsTask();
        Assert.False(waiting.IsCompleted);

        await SendFromPeerAsync([1, 2, 3]);
        Assert.Equal(0, await waiting.WaitAsync(Bound, TestContext.Current.CancellationToken));

        var buffer = new byte[8];
        Assert.Equal(3, await stream.ReadAsync(buffer, TestContext.Current.CancellationToken));
        Assert.Equal(new byte[] { 1, 2, 3 }, buffer[..3]);
    }

    [Fact]
    public async Task The_keep_alive_over_it_sees_when_bytes_last_came_in()
    {
        // KeepAliveStream reads this stream straight through and takes the receive time from it.
        using var keepAlive = new KeepAliveStream(Stream());
        var before = keepAlive.LastReceived;
        Assert.True(SpinWait.SpinUntil(() => Environment.TickCount64 >= before + 20, Bound));

        var waiting = keepAlive.ReadAsync(Memory<byte>.Empty, TestContext.Current.CancellationToken).AsTask();
        await SendFromPeerAsync([1]);
        Assert.Equal(0, await waiting.WaitAsync(Bound, TestContext.Current.CancellationToken));
        Assert.Equal(before, keepAlive.LastReceived);

        Assert.Equal(1, await keepAlive.ReadAsync(new byte[4], TestContext.Current.CancellationToken));
        Assert.True(keepAlive.LastReceived >= before + 20);
    }

    [Fact]
    public async Task A_read_takes_what_fits_and_leaves_the_rest_for_the_next()
    {
        using var stream = Stream();
        await SendFromPeerAsync([1, 2, 3, 4, 5]);

        var buffer = new byte[2];
        Assert.Equal(2, await stream.ReadAsync(buffer, TestContext.Current.CancellationToken));
        Assert.Equal(new byte[] { 1, 2 }, buffer);
        Assert.Equal(2, await stream.ReadAsync(buffer, TestContext.Current.CancellationToken));
        Assert.Equal(new byte[] { 3, 4 }, buffer);
    }

    [Fact]
    public async Task The_peer_closing_ends_the_stream()
    {
        using var stream = Stream();
        await CloseFromPeerAsync();

        Assert.Equal(0, await stream.ReadAsync(new byte[4], TestContext.Current.CancellationToken).AsTask().WaitAsync(Bound, TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task Writes_reach_the_peer()
    {
        using var stream = Stream();
        await stream.WriteAsync(new byte[] { 7, 8 }, TestContext.Current.CancellationToken);

        Assert.Equal(new byte[] { 7, 8 }, await ReceiveAtPeerAsync(2));
    }

    [Fact]
    public async Task Disposing_wakes_a_pending_read_as_aborting_a_websocket_needs()
    {
        var stream = Stream();
        var waiting = stream.ReadAsync(new byte[4], TestContext.Current.CancellationToken).AsTask();
        Assert.False(waiting.IsCompleted);

        await stream.DisposeAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.WaitAsync(Bound, TestContext.Current.CancellationToken));
    }
}
