using System.Net;
using System.Net.Sockets;
using Realtime.Gateway.Connections;
using Realtime.Gateway.Connections.Upgrade;

namespace Realtime.Gateway.Tests.Connections.Upgrade;

/// <summary>The stream a direct WebSocket runs on, over a real loopback TCP connection.</summary>
public sealed class SocketStreamTests : IAsyncLifetime
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    private Socket _ours = null!;
    private Socket _peer = null!;

    public async ValueTask InitializeAsync()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        _peer = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var accepting = listener.AcceptAsync(TestContext.Current.CancellationToken).AsTask();
        await _peer.ConnectAsync(listener.LocalEndPoint!, TestContext.Current.CancellationToken);
        _ours = await accepting.WaitAsync(Bound, TestContext.Current.CancellationToken);
        // As DirectSocketTransport leaves the sockets it keeps.
        _ours.Blocking = false;
    }

    public ValueTask DisposeAsync()
    {
        _ours.Dispose();
        _peer.Dispose();
        return ValueTask.CompletedTask;
    }

    [Fact]
    public async Task A_zero_byte_read_waits_for_data_and_takes_none_of_it()
    {
        using var stream = new SocketStream(_ours);
        var waiting = stream.ReadAsync(Memory<byte>.Empty, TestContext.Current.CancellationToken).AsTask();
        Assert.False(waiting.IsCompleted);

        await _peer.SendAsync(new byte[] { 1, 2, 3 }, TestContext.Current.CancellationToken);
        Assert.Equal(0, await waiting.WaitAsync(Bound, TestContext.Current.CancellationToken));

        var buffer = new byte[8];
        Assert.Equal(3, await stream.ReadAsync(buffer, TestContext.Current.CancellationToken));
        Assert.Equal(new byte[] { 1, 2, 3 }, buffer[..3]);
    }

    [Fact]
    public async Task The_keep_alive_over_it_sees_when_bytes_last_came_in()
    {
        using var keepAlive = new KeepAliveStream(new SocketStream(_ours));
        var before = keepAlive.LastReceived;
        Assert.True(SpinWait.SpinUntil(() => Environment.TickCount64 >= before + 20, Bound));

        var waiting = keepAlive.ReadAsync(Memory<byte>.Empty, TestContext.Current.CancellationToken).AsTask();
        await _peer.SendAsync(new byte[] { 1 }, TestContext.Current.CancellationToken);
        Assert.Equal(0, await waiting.WaitAsync(Bound, TestContext.Current.CancellationToken));
        Assert.Equal(before, keepAlive.LastReceived);

        Assert.Equal(1, await keepAlive.ReadAsync(new byte[4], TestContext.Current.CancellationToken));
        Assert.True(keepAlive.LastReceived >= before + 20);
    }

    [Fact]
    public async Task The_peer_closing_ends_the_stream()
    {
        using var stream = new SocketStream(_ours);
        _peer.Shutdown(SocketShutdown.Send);

        Assert.Equal(0, await stream.ReadAsync(new byte[4], TestContext.Current.CancellationToken).AsTask().WaitAsync(Bound, TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task A_write_larger_than_the_kernel_takes_at_once_completes_in_order_as_the_peer_reads()
    {
        // A small send buffer; the peer's receive window grows only as it reads.
        _ours.SendBufferSize = 4096;
        using var stream = new SocketStream(_ours);
        var sent = new byte[8 * 1024 * 1024];
        for (var i = 0; i < sent.Length; i++)
        {
            sent[i] = (byte)(i * 7);
        }

        // The plain send takes what fits; the rest waits for the peer to read.
        var writing = stream.WriteAsync(sent, TestContext.Current.CancellationToken).AsTask();
        Assert.False(writing.IsCompleted);

        var received = new byte[sent.Length];
        var total = 0;
        using var timeout = new CancellationTokenSource(Bound);
        while (total < received.Length)
        {
            total += await _peer.ReceiveAsync(received.AsMemory(total), timeout.Token);
        }

        await writing.WaitAsync(Bound, TestContext.Current.CancellationToken);
        Assert.Equal(sent, received);
    }

    [Fact]
    public async Task Disposing_wakes_a_pending_read_and_the_peer_sees_the_end()
    {
        var stream = new SocketStream(_ours);
        var reading = stream.ReadAsync(new byte[4], TestContext.Current.CancellationToken).AsTask();
        Assert.False(reading.IsCompleted);

        stream.Dispose();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => reading.WaitAsync(Bound, TestContext.Current.CancellationToken));
        Assert.Equal(0, await _peer.ReceiveAsync(new byte[4], TestContext.Current.CancellationToken).AsTask().WaitAsync(Bound, TestContext.Current.CancellationToken));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => stream.WriteAsync(new byte[] { 1 }, TestContext.Current.CancellationToken).AsTask());
    }

    [Fact]
    public async Task A_reset_by_the_peer_is_an_io_exception()
    {
        using var stream = new SocketStream(_ours);
        var reading = stream.ReadAsync(new byte[4], TestContext.Current.CancellationToken).AsTask();
        _peer.LingerState = new LingerOption(true, 0);
        _peer.Close();

        var error = await Assert.ThrowsAsync<IOException>(() => reading.WaitAsync(Bound, TestContext.Current.CancellationToken));
        Assert.IsType<SocketException>(error.InnerException);
    }
}
