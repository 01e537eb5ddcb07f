using Realtime.Gateway.Connections;

namespace Realtime.Gateway.Routing;

/// <summary>
/// Who writes an event to a channel's local subscribers. A few subscribers are written by the
/// dispatching thread itself, no hand-off. A large fan-out is queued there, in order, and
/// written from the thread pool in slices, so one busy channel does not serialise every socket
/// write of the node on the single dispatch thread.
/// </summary>
/// <remarks>
/// Measured on W2 (1,000 subscribers, 100 events/s, 2 gateways): with every write on the
/// dispatch thread, that thread spent three quarters of the run waiting for a core (its
/// <c>schedstat</c>: 5.3 s running, 19.6 s runnable) and the delivery topic fell seconds
/// behind; most of its time was the WebSocket send path (framing, Kestrel's pipe and flush).
/// Queueing stays on the dispatch thread because each connection's cursor and queue order
/// follow the channel's order; the writes only start elsewhere, and each connection keeps its
/// single writer.
/// </remarks>
internal static class FanoutWrites
{
    /// <summary>Up to this many subscribers the dispatching thread writes to them itself.</summary>
    public const int InlineLimit = 64;

    /// <summary>Subscribers per thread-pool work item of a large fan-out.</summary>
    public const int SliceSize = 64;

    public static void Deliver(IFrameSink[] subscribers, string channel, OutgoingEvent outgoing)
    {
        if (subscribers.Length <= InlineLimit)
        {
            foreach (var sink in subscribers)
            {
                sink.DeliverEvent(channel, outgoing);
            }

            return;
        }

        for (var start = 0; start < subscribers.Length; start += SliceSize)
        {
            var end = Math.Min(start + SliceSize, subscribers.Length);
            var queued = false;
            for (var i = start; i < end; i++)
            {
                queued |= subscribers[i].QueueEvent(channel, outgoing);
            }

            if (queued)
            {
                ThreadPool.UnsafeQueueUserWorkItem(new WriteSlice(subscribers, start, end), preferLocal: false);
            }
        }
    }

    private sealed class WriteSlice(IFrameSink[] subscribers, int start, int end) : IThreadPoolWorkItem
    {
        public void Execute()
        {
            for (var i = start; i < end; i++)
            {
                subscribers[i].StartWrites();
            }
        }
    }
}
