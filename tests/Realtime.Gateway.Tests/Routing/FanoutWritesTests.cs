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

        public void StartWrites() => log.Written(index);

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
