using Realtime.Gateway.Connections;

namespace Realtime.Gateway.Routing;

/// <summary>
/// Who writes an event to a channel's local subscribers. A few subscribers are written by the
/// dispatching thread itself, no hand-off. A large fan-out is queued there, in order, and
/// written from the thread pool in slices, so one busy channel does not serialise every socket
/// write of the node on the single dispatch thread; so is a node-topic batch whose small
/// fan-outs add up to more than a slice (<see cref="WriteBatch"/>).
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

    /// <summary>Offers the event to the channel's subscribers.</summary>
    /// <param name="subscribers">The channel's local subscribers.</param>
    /// <param name="channel">The channel.</param>
    /// <param name="outgoing">The event, encoded once for every subscriber.</param>
    /// <param name="batch">
    /// When the event is one of a node-topic batch: where a few subscribers' writes wait to be
    /// started with the rest of the batch's (<see cref="WriteBatch"/>). Null: written here now.
    /// </param>
    public static void Deliver(IFrameSink[] subscribers, string channel, OutgoingEvent outgoing, WriteBatch? batch = null)
    {
        if (subscribers.Length <= InlineLimit)
        {
            foreach (var sink in subscribers)
            {
                if (batch is null)
                {
                    sink.DeliverEvent(channel, outgoing);
                }
                else if (sink.QueueEvent(channel, outgoing))
                {
                    batch.Add(sink);
                }
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

    /// <summary>
    /// The writes a node-topic batch queued on small channels, started together: by the
    /// dispatching thread when the batch is small, from the thread pool in slices when it is not.
    /// Used by one dispatching thread at a time.
    /// </summary>
    /// <remarks>
    /// Why: with one subscriber per channel (W3) every event is its own small fan-out, so a batch
    /// of hundreds of events meant hundreds of socket sends made one after another by the node's
    /// consumer thread. Since WebSockets write straight to their sockets (change 29) each of those
    /// is a <c>send</c> system call on that thread, and W3's p99 at 5,000 events/s doubled. A
    /// batch that fills a slice now has its writes started from the pool, as a large fan-out's
    /// are; a batch of a few events is still written by the consumer thread, with no hand-off.
    /// </remarks>
    internal sealed class WriteBatch
    {
        private IFrameSink[] _pending = new IFrameSink[SliceSize];
        private int _count;
        private bool _sliced;

        public void Add(IFrameSink sink)
        {
            _pending[_count++] = sink;
            if (_count == SliceSize)
            {
                QueueSlice();
            }
        }

        /// <summary>Starts what is left: here when the whole batch fitted one slice, else from the pool.</summary>
        public void Flush()
        {
            if (_count > 0)
            {
                if (_sliced)
                {
                    QueueSlice();
                }
                else
                {
                    for (var i = 0; i < _count; i++)
                    {
                        _pending[i].StartWrites();
                    }

                    Array.Clear(_pending, 0, _count);
                    _count = 0;
                }
            }

            _sliced = false;
        }

        private void QueueSlice()
        {
            // The slice keeps its array: the next one gets a new one.
            ThreadPool.UnsafeQueueUserWorkItem(new WriteSlice(_pending, 0, _count), preferLocal: false);
            _pending = new IFrameSink[SliceSize];
            _count = 0;
            _sliced = true;
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
