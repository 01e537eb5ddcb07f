using System.Collections.Concurrent;
using Realtime.Contracts.V1;
using Realtime.Gateway.Connections;
using Realtime.Gateway.Protocol;
using Realtime.Gateway.Routing;

namespace Realtime.Gateway.Tests.Routing;

public sealed class FanoutWritesTests
{
    private static readonly TimeSpan Bounded = TimeSpan.FromSeconds(10);

    [Fact]
    public void A_small_fanout_is_delivered_and_written_by_the_dispatching_thread()
    {
        using var log = new CallLog();
        var sinks = Sinks(FanoutWrites.InlineLimit, log);
        using var outgoing = Event();

        FanoutWrites.Deliver(sinks, "room", outgoing);

        var thread = Environment.CurrentManagedThreadId;
        Assert.Equal(
            [.. Enumerable.Range(0, sinks.Length).Select(i => ("deliver", i, thread))],
            log.Calls);
    }

    [Fact]
    public void A_large_fanout_is_queued_in_order_by_the_dispatching_thread_and_every_sink_is_written()
    {
        using var log = new CallLog();
        var count = (FanoutWrites.SliceSize * 3) + 5;
        var sinks = Sinks(count, log);
        using var outgoing = Event();

        FanoutWrites.Deliver(sinks, "room", outgoing);

        // Every queue happened before Deliver returned, on this thread, in subscriber order:
        // a connection's frames keep the channel's order whoever writes them.
        var thread = Environment.CurrentManagedThreadId;
        Assert.Equal(
            [.. Enumerable.Range(0, count).Select(i => ("queue", i, thread))],
            log.Calls.Where(c => c.Call == "queue"));

        Assert.True(log.WaitForWrites(count, Bounded), $"{log.Writes} of {count} sinks were written");
        Assert.Equal(Enumerable.Range(0, count), log.WrittenSinks.Order());
    }

    [Fact]
    public void A_slice_with_nothing_queued_schedules_no_writes()
    {
        using var log = new CallLog();
        var size = FanoutWrites.SliceSize;

        // The first slice queues nothing (its sinks dropped the event: not subscribed, behind, ...),
        // the second queues for one sink.
        var sinks = Sinks(size * 2, log, queues: i => i == size + 3);
        using var outgoing = Event();

        FanoutWrites.Deliver(sinks, "room", outgoing);

        Assert.True(log.WaitForWrites(size, Bounded), $"{log.Writes} of {size} sinks were written");
        Assert.Equal(Enumerable.Range(size, size), log.WrittenSinks.Order());
    }

    [Fact]
    public void A_sink_that_writes_no_queue_is_delivered_directly_in_a_large_fanout()
    {
        using var log = new CallLog();
        var plain = new PlainSink(log);
        IFrameSink[] sinks = [.. Sinks(FanoutWrites.InlineLimit, log), plain];
        using var outgoing = Event();

        FanoutWrites.Deliver(sinks, "room", outgoing);

        Assert.Equal(1, plain.Delivered);
        Assert.True(log.WaitForWrites(FanoutWrites.InlineLimit, Bounded), $"{log.Writes} of {FanoutWrites.InlineLimit} sinks were written");
    }

    [Fact]
    public void A_small_batchs_writes_wait_for_its_flush_and_are_made_there_by_the_dispatching_thread()
    {
        using var log = new CallLog();
        var batch = new FanoutWrites.WriteBatch();
        // One subscriber per channel (W3's shape), a few events; the third sink dropped its event.
        var sinks = Sinks(5, log, queues: i => i != 2);
        using var outgoing = Event();

        foreach (var sink in sinks)
        {
            FanoutWrites.Deliver([sink], "room", outgoing, batch);
        }

        Assert.Equal(0, log.Writes);
        batch.Flush();

        var thread = Environment.CurrentManagedThreadId;
        Assert.Equal(
            [("write", 0, thread), ("write", 1, thread), ("write", 3, thread), ("write", 4, thread)],
            log.Calls.Where(c => c.Call == "write"));
    }

    [Fact]
    public void A_batch_larger_than_a_slice_is_queued_in_order_here_and_written_from_the_pool()
    {
        using var log = new CallLog();
        var batch = new FanoutWrites.WriteBatch();
        var count = (FanoutWrites.SliceSize * 2) + 3;
        var sinks = Sinks(count, log);
        using var outgoing = Event();

        foreach (var sink in sinks)
        {
            FanoutWrites.Deliver([sink], "room", outgoing, batch);
        }

        batch.Flush();

        var thread = Environment.CurrentManagedThreadId;
        Assert.Equal(
            [.. Enumerable.Range(0, count).Select(i => ("queue", i, thread))],
            log.Calls.Where(c => c.Call == "queue"));
        Assert.True(log.WaitForWrites(count, Bounded), $"{log.Writes} of {count} sinks were written");
        Assert.Equal(Enumerable.Range(0, count), log.WrittenSinks.Order());
        // The remainder after the last full slice went to the pool too, not to this thread.
        Assert.DoesNotContain(log.Calls, c => c.Call == "write" && c.Thread == thread);
    }

    [Fact]
    public void A_flushed_batch_starts_afresh()
    {
        using var log = new CallLog();
        var batch = new FanoutWrites.WriteBatch();
        using var outgoing = Event();
        foreach (var sink in Sinks(FanoutWrites.SliceSize + 1, log))
        {
            FanoutWrites.Deliver([sink], "room", outgoing, batch);
        }

        batch.Flush();
        Assert.True(log.WaitForWrites(FanoutWrites.SliceSize + 1, Bounded));

        // The next record's batch is small again: written at its flush, on this thread.
        var next = new RecordingSink(1000, log, queues: true);
        FanoutWrites.Deliver([next], "room", outgoing, batch);
        batch.Flush();
        Assert.Contains(("write", 1000, Environment.CurrentManagedThreadId), log.Calls);
    }

    private static RecordingSink[] Sinks(int count, CallLog log, Func<int, bool>? queues = null) =>
        [.. Enumerable.Range(0, count).Select(i => new RecordingSink(i, log, queues?.Invoke(i) ?? true))];

    private static OutgoingEvent Event() =>
        new(new EventEnvelope { Channel = "room", EventId = "e-1" }, 1, "epoch");

    private sealed class CallLog : IDisposable
    {
        private readonly ConcurrentQueue<(string Call, int Sink, int Thread)> _calls = new();
        private readonly ConcurrentBag<int> _written = [];
        private readonly SemaphoreSlim _writes = new(0);

        public IReadOnlyList<(string Call, int Sink, int Thread)> Calls => [.. _calls];

        public IEnumerable<int> WrittenSinks => _written;

        public int Writes => _written.Count;

        public void Dispose() => _writes.Dispose();

        public void Add(string call, int sink) => _calls.Enqueue((call, sink, Environment.CurrentManagedThreadId));

        public void Written(int sink)
        {
            _written.Add(sink);
            _writes.Release();
        }

        public bool WaitForWrites(int count, TimeSpan timeout)
        {
            var deadline = DateTime.UtcNow + timeout;
            for (var i = 0; i < count; i++)
            {
                var left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero || !_writes.Wait(left))
                {
                    return false;
                }
            }

            return true;
        }
    }

    private sealed class RecordingSink(int index, CallLog log, bool queues) : IFrameSink
    {
        public void DeliverEvent(string channel, OutgoingEvent outgoing) => log.Add("deliver", index);

        public bool QueueEvent(string channel, OutgoingEvent outgoing)
        {
            log.Add("queue", index);
            return queues;
        }

        public void StartWrites()
        {
            log.Add("write", index);
            log.Written(index);
        }

        public void CatchUp(string channel, ChannelPosition head)
        {
        }
    }

    private sealed class PlainSink(CallLog log) : IFrameSink
    {
        private int _delivered;

        public int Delivered => Volatile.Read(ref _delivered);

        public void DeliverEvent(string channel, OutgoingEvent outgoing) => Interlocked.Increment(ref _delivered);

        public void CatchUp(string channel, ChannelPosition head) => log.Add("catch-up", -1);
    }
}
