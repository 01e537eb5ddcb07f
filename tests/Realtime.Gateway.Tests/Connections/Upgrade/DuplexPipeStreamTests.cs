using System.Buffers;
using System.IO.Pipelines;
using Realtime.Gateway.Connections;
using Realtime.Gateway.Connections.Upgrade;

namespace Realtime.Gateway.Tests.Connections.Upgrade;

public sealed class DuplexPipeStreamTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    private readonly Pipe _fromPeer = new();
    private readonly Pipe _toPeer = new();

    private DuplexPipeStream Stream() => new(new Transport(_fromPeer.Reader, _toPeer.Writer));

    [Fact]
    public async Task A_zero_byte_read_waits_for_data_and_takes_none_of_it()
    {
        using var stream = Stream();
        var waiting = stream.ReadAsync(Memory<byte>.Empty, TestContext.Current.CancellationToken).AsTask();
        Assert.False(waiting.IsCompleted);

        await _fromPeer.Writer.WriteAsync(new byte[] { 1, 2, 3 }, TestContext.Current.CancellationToken);
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
        await _fromPeer.Writer.WriteAsync(new byte[] { 1 }, TestContext.Current.CancellationToken);
        Assert.Equal(0, await waiting.WaitAsync(Bound, TestContext.Current.CancellationToken));
        Assert.Equal(before, keepAlive.LastReceived);

        Assert.Equal(1, await keepAlive.ReadAsync(new byte[4], TestContext.Current.CancellationToken));
        Assert.True(keepAlive.LastReceived >= before + 20);
    }

    [Fact]
    public async Task A_read_takes_what_fits_and_leaves_the_rest_for_the_next()
    {
        using var stream = Stream();
        await _fromPeer.Writer.WriteAsync(new byte[] { 1, 2, 3, 4, 5 }, TestContext.Current.CancellationToken);

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
        await _fromPeer.Writer.CompleteAsync();

        Assert.Equal(0, await stream.ReadAsync(new byte[4], TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task Writes_reach_the_transport()
    {
        using var stream = Stream();
        await stream.WriteAsync(new byte[] { 7, 8 }, TestContext.Current.CancellationToken);

        var read = await _toPeer.Reader.ReadAsync(TestContext.Current.CancellationToken);
        Assert.Equal(new byte[] { 7, 8 }, read.Buffer.ToArray());
    }

    [Fact]
    public async Task Disposing_wakes_a_pending_read_as_aborting_a_websocket_needs()
    {
        var stream = Stream();
        var waiting = stream.ReadAsync(new byte[4], TestContext.Current.CancellationToken).AsTask();

        await stream.DisposeAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.WaitAsync(Bound, TestContext.Current.CancellationToken));
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await stream.ReadExactlyAsync(new byte[4], TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task A_write_after_the_transport_stopped_reading_fails()
    {
        using var stream = Stream();
        await _toPeer.Reader.CompleteAsync();

        await Assert.ThrowsAsync<IOException>(async () => await stream.WriteAsync(new byte[] { 1 }, TestContext.Current.CancellationToken));
    }

    private sealed class Transport(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
