namespace Realtime.Gateway.Routing;

/// <summary>
/// One channel's local subscribers: adding or removing one costs the same whatever the channel's
/// size, and dispatch reads an array without a lock, built at most once per change, when an event
/// next needs it.
/// </summary>
/// <remarks>
/// Why not a new array on every change: subscribing N clients to one channel then copies N²/2
/// references. From 10,000 to 19,000 subscribers of one channel (W1) that was about 1 GB of
/// arrays on the large-object heap, which only a full collection frees: the node's memory grew
/// by twice what its connections hold (docs/benchmarks.md, change 25). A subscribe storm with no
/// event meanwhile builds no array at all; an event during one builds it once.
/// </remarks>
internal sealed class ChannelSubscribers
{
    /// <summary>Up to this many subscribers a scan finds one; above it a dictionary indexes them.</summary>
    internal const int ScanLimit = 16;

    private readonly Lock _lock = new();
    private IFrameSink[] _items = [];
    private int _count;

    // Where each subscriber sits in _items, for channels too large to scan (null below ScanLimit:
    // most channels of a chat have a few subscribers per node, and each would pay for a dictionary).
    private Dictionary<IFrameSink, int>? _index;

    // null after a change until the next event builds it.
    private volatile IFrameSink[]? _snapshot = [];

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _count;
            }
        }
    }

    /// <summary>The subscribers as they are now: one array shared by every caller until the next change.</summary>
    public IFrameSink[] Snapshot() => _snapshot ?? BuildSnapshot();

    public bool Contains(IFrameSink sink)
    {
        lock (_lock)
        {
            return IndexOf(sink) >= 0;
        }
    }

    /// <returns>False when the sink was already there.</returns>
    public bool Add(IFrameSink sink)
    {
        lock (_lock)
        {
            if (IndexOf(sink) >= 0)
            {
                return false;
            }

            if (_count == _items.Length)
            {
                Array.Resize(ref _items, Math.Max(4, _count * 2));
            }

            _items[_count] = sink;
            if (_index is not null)
            {
                _index.Add(sink, _count);
            }
            else if (_count + 1 > ScanLimit)
            {
                _index = new Dictionary<IFrameSink, int>(_items.Length, ReferenceEqualityComparer.Instance);
                for (var i = 0; i <= _count; i++)
                {
                    _index.Add(_items[i], i);
                }
            }

            _count++;
            _snapshot = null;
            return true;
        }
    }

    /// <returns>False when the sink was not there.</returns>
    public bool Remove(IFrameSink sink)
    {
        lock (_lock)
        {
            var index = IndexOf(sink);
            if (index < 0)
            {
                return false;
            }

            // Order among subscribers means nothing: the last one takes the freed place.
            var last = --_count;
            if (index != last)
            {
                var moved = _items[last];
                _items[index] = moved;
                if (_index is not null)
                {
                    _index[moved] = index;
                }
            }

            _items[last] = null!;
            _index?.Remove(sink);
            if (_count <= ScanLimit / 2)
            {
                _index = null;
            }

            if (_items.Length > 64 && _count < _items.Length / 4)
            {
                Array.Resize(ref _items, _items.Length / 2);
                _index?.TrimExcess();
            }

            _snapshot = null;
            return true;
        }
    }

    private int IndexOf(IFrameSink sink)
    {
        if (_index is not null)
        {
            return _index.TryGetValue(sink, out var index) ? index : -1;
        }

        for (var i = 0; i < _count; i++)
        {
            if (ReferenceEquals(_items[i], sink))
            {
                return i;
            }
        }

        return -1;
    }

    private IFrameSink[] BuildSnapshot()
    {
        lock (_lock)
        {
            return _snapshot ??= _count == 0 ? [] : _items.AsSpan(0, _count).ToArray();
        }
    }
}
