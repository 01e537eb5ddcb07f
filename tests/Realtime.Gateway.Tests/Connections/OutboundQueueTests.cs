using Realtime.Gateway.Connections;

namespace Realtime.Gateway.Tests.Connections;

public sealed class OutboundQueueTests
{
    [Fact]
    public void Refuses_frames_past_its_byte_limit_and_counts_bytes_back_when_sent()
    {
        var queue = new OutboundQueue(limitBytes: 100);
        var frame = SharedFrame.Copy(new byte[60]);

        Assert.True(queue.TryEnqueue(new QueuedFrame(frame)));
        Assert.False(queue.TryEnqueue(new QueuedFrame(frame)));
        Assert.Equal(60, queue.QueuedBytes);

        Assert.True(queue.TryDequeue(out var taken));
        queue.Sent(taken!);
        Assert.Equal(0, queue.QueuedBytes);
        Assert.True(queue.TryEnqueue(new QueuedFrame(frame)));
        queue.Close();
        Assert.Equal(0, queue.QueuedBytes);
        frame.Release();
    }

    [Fact]
    public void A_shared_frame_returns_its_buffer_only_after_the_last_holder_released_it()
    {
        var frame = SharedFrame.Copy([1, 2, 3]);
        var a = new OutboundQueue(1_000);
        var b = new OutboundQueue(1_000);
        Assert.True(a.TryEnqueue(new QueuedFrame(frame)));
        Assert.True(b.TryEnqueue(new QueuedFrame(frame)));
        frame.Release();

        Assert.True(a.TryDequeue(out var fromA));
        a.Sent(fromA!);
        Assert.Equal(new byte[] { 1, 2, 3 }, frame.Memory.ToArray());

        Assert.True(b.TryDequeue(out var fromB));
        b.Sent(fromB!);
        Assert.Throws<ObjectDisposedException>(() => frame.Memory);
        Assert.Throws<InvalidOperationException>(frame.Release);
    }

    [Fact]
    public void A_completed_queue_refuses_new_frames_but_keeps_queued_ones()
    {
        var queue = new OutboundQueue(1_000);
        var frame = SharedFrame.Copy([1]);
        Assert.True(queue.TryEnqueue(new QueuedFrame(frame)));
        queue.Complete();
        Assert.False(queue.TryEnqueue(new QueuedFrame(frame)));
        Assert.False(queue.IsDrained);
        Assert.True(queue.TryDequeue(out var queued));
        queue.Sent(queued!);
        Assert.True(queue.IsDrained);
        Assert.False(queue.TryDequeue(out _));
        frame.Release();
    }

    [Fact]
    public void Frames_come_out_in_order_and_a_burst_does_not_keep_its_room()
    {
        var queue = new OutboundQueue(1_000_000);
        var frames = Enumerable.Range(0, 100).Select(i => SharedFrame.Copy([(byte)i])).ToList();
        foreach (var frame in frames)
        {
            Assert.True(queue.TryEnqueue(new QueuedFrame(frame)));
        }

        Assert.True(queue.NeedsWriter);
        for (var i = 0; i < frames.Count; i++)
        {
            Assert.True(queue.TryDequeue(out var item));
            Assert.Equal((byte)i, item.Frame.Memory.Span[0]);
            queue.Sent(item);
        }

        Assert.False(queue.NeedsWriter);
        Assert.False(queue.IsDrained);
        Assert.Equal(0, queue.QueuedBytes);
        Assert.True(queue.TryEnqueue(new QueuedFrame(frames[0])));
        Assert.True(queue.TryDequeue(out var again));
        queue.Sent(again);
        frames.ForEach(f => f.Release());
    }

    [Fact]
    public void Frames_keep_their_order_however_enqueues_and_dequeues_interleave()
    {
        // The first frame waits in a slot of its own and later ones in a queue behind it: whatever
        // the interleaving, what comes out is what went in, in order.
        var random = new Random(7);
        var queue = new OutboundQueue(1_000_000);
        var expected = new Queue<byte>();
        var frames = new List<SharedFrame>();
        for (var step = 0; step < 2_000; step++)
        {
            if (random.Next(3) != 0)
            {
                var frame = SharedFrame.Copy([(byte)step]);
                frames.Add(frame);
                Assert.True(queue.TryEnqueue(new QueuedFrame(frame)));
                expected.Enqueue((byte)step);
            }
            else if (expected.Count > 0)
            {
                Assert.True(queue.TryDequeue(out var item));
                Assert.Equal(expected.Dequeue(), item.Frame.Memory.Span[0]);
                queue.Sent(item);
            }
            else
            {
                Assert.False(queue.TryDequeue(out _));
            }

            Assert.Equal(expected.Count > 0, queue.NeedsWriter);
        }

        while (expected.Count > 0)
        {
            Assert.True(queue.TryDequeue(out var item));
            Assert.Equal(expected.Dequeue(), item.Frame.Memory.Span[0]);
            queue.Sent(item);
        }

        Assert.False(queue.TryDequeue(out _));
        Assert.Equal(0, queue.QueuedBytes);
        frames.ForEach(f => f.Release());
    }
}
