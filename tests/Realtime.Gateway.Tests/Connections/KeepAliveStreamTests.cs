using Realtime.Gateway.Connections;

namespace Realtime.Gateway.Tests.Connections;

public sealed class KeepAliveStreamTests
{
    private const long Interval = 1_000;
    private const long Timeout = 500;

    private long _now = 1_000_000;

    private KeepAliveStream Over(RecordingStream inner) => new(inner, () => _now);

    [Fact]
    public void A_silent_client_is_pinged_after_the_interval_and_declared_dead_after_the_timeout()
    {
        var inner = new RecordingStream();
        using var stream = Over(inner);
        var start = stream.LastReceived;

        Assert.Equal(KeepAliveStream.Liveness.Alive, stream.Check(start + Interval - 1, Interval, Timeout));
        Assert.Empty(inner.Writes);

        Assert.Equal(KeepAliveStream.Liveness.Pinged, stream.Check(start + Interval, Interval, Timeout));
        Assert.Equal([0x89, 0x00], Assert.Single(inner.Writes));

        // One ping outstanding at a time; dead once the timeout passes with nothing back.
        Assert.Equal(KeepAliveStream.Liveness.Alive, stream.Check(start + Interval + Timeout - 1, Interval, Timeout));
        Assert.Single(inner.Writes);
        Assert.Equal(KeepAliveStream.Liveness.Dead, stream.Check(start + Interval + Timeout, Interval, Timeout));
    }

    [Fact]
    public async Task Anything_received_after_a_ping_answers_it_and_restarts_the_interval()
    {
        var inner = new RecordingStream();
        using var stream = Over(inner);
        _now += Interval;
        Assert.Equal(KeepAliveStream.Liveness.Pinged, stream.Check(_now, Interval, Timeout));

        // The pong (or any frame) arrives: its bytes pass through the stream.
        _now += 10;
        inner.Incoming = [0x8A, 0x00];
        Assert.Equal(2, await stream.ReadAsync(new byte[16], TestContext.Current.CancellationToken));
        Assert.Equal(_now, stream.LastReceived);

        // Not dead when the timeout passes, and the next ping waits a whole interval of silence.
        Assert.Equal(KeepAliveStream.Liveness.Alive, stream.Check(_now + Timeout, Interval, Timeout));
        Assert.Equal(KeepAliveStream.Liveness.Alive, stream.Check(_now + Interval - 1, Interval, Timeout));
        Assert.Single(inner.Writes);
        Assert.Equal(KeepAliveStream.Liveness.Pinged, stream.Check(_now + Interval, Interval, Timeout));
        Assert.Equal(2, inner.Writes.Count);

        // A read that returns nothing (a zero-byte read) is not a sign of life.
        inner.Incoming = [];
        _now += Interval + 1;
        Assert.Equal(0, await stream.ReadAsync(Memory<byte>.Empty, TestContext.Current.CancellationToken));
        Assert.Equal(KeepAliveStream.Liveness.Dead, stream.Check(_now + Timeout, Interval, Timeout));
    }

    [Fact]
    public async Task A_ping_never_lands_inside_a_frame_being_written()
    {
        var inner = new RecordingStream();
        using var stream = Over(inner);
        var cancellation = TestContext.Current.CancellationToken;

        // A frame whose write waits (the client's receive window is full): the sweep leaves the
        // stream alone and tries again next time.
        inner.Pending = new TaskCompletionSource();
        var frame = stream.WriteAsync(new byte[] { 0x81, 0x01, (byte)'a' }, cancellation);
        Assert.False(frame.IsCompleted);
        Assert.Equal(KeepAliveStream.Liveness.Alive, stream.Check(stream.LastReceived + Interval, Interval, Timeout));
        inner.Pending.SetResult();
        await frame;
        Assert.Single(inner.Writes);

        // A ping whose write waits: the next frame queues behind it instead of interleaving.
        inner.Pending = new TaskCompletionSource();
        Assert.Equal(KeepAliveStream.Liveness.Pinged, stream.Check(stream.LastReceived + Interval, Interval, Timeout));
        var next = inner.Pending;
        inner.Pending = null;
        var after = stream.WriteAsync(new byte[] { 0x81, 0x01, (byte)'b' }, cancellation).AsTask();
        Assert.False(after.IsCompleted);
        Assert.Equal(2, inner.Writes.Count);
        next.SetResult();
        await after.WaitAsync(TimeSpan.FromSeconds(5), cancellation);
        Assert.Equal([[0x81, 0x01, (byte)'a'], [0x89, 0x00], [0x81, 0x01, (byte)'b']], inner.Writes);
    }

    [Fact]
    public void The_sweep_runs_a_quarter_of_the_shorter_wait_between_50_ms_and_one_second()
    {
        Assert.Equal(TimeSpan.FromSeconds(1), WebSocketKeepAlive.SweepPeriod(TimeSpan.FromSeconds(25), TimeSpan.FromSeconds(10)));
        Assert.Equal(TimeSpan.FromMilliseconds(250), WebSocketKeepAlive.SweepPeriod(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1)));
        Assert.Equal(TimeSpan.FromMilliseconds(50), WebSocketKeepAlive.SweepPeriod(TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(1)));
    }

    /// <summary>Records each write as one array; a write can be made to wait on <see cref="Pending"/>.</summary>
    private sealed class RecordingStream : Stream
    {
        public List<byte[]> Writes { get; } = [];

        public TaskCompletionSource? Pending { get; set; }

        public byte[] Incoming { get; set; } = [];

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Writes.Add(buffer.ToArray());
            return Pending is { } pending ? new ValueTask(pending.Task) : default;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Incoming.CopyTo(buffer);
            return new ValueTask<int>(Incoming.Length);
        }

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
