using System.Buffers;

namespace Realtime.Gateway.Connections;

/// <summary>
/// One encoded frame, written once and shared by every connection it is sent to. Its buffer
/// comes from the array pool and goes back when the last holder releases it.
/// </summary>
/// <remarks>
/// The creator holds the first reference; every queue that accepts the frame takes one more
/// and releases it once the bytes are on the socket (or the connection is gone).
/// </remarks>
internal sealed class SharedFrame
{
    private byte[]? _buffer;
    private int _references = 1;

    private SharedFrame(byte[] buffer, int length)
    {
        _buffer = buffer;
        Length = length;
    }

    public int Length { get; }

    public ReadOnlyMemory<byte> Memory => new(_buffer ?? throw new ObjectDisposedException(nameof(SharedFrame)), 0, Length);

    /// <summary>Takes ownership of a pooled buffer holding <paramref name="length"/> bytes.</summary>
    public static SharedFrame FromPooled(byte[] buffer, int length) => new(buffer, length);

    /// <summary>Copies bytes into a pooled buffer.</summary>
    public static SharedFrame Copy(ReadOnlySpan<byte> bytes)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(bytes.Length);
        bytes.CopyTo(buffer);
        return new SharedFrame(buffer, bytes.Length);
    }

    public void AddReference() => Interlocked.Increment(ref _references);

    public void Release()
    {
        var remaining = Interlocked.Decrement(ref _references);
        if (remaining == 0)
        {
            var buffer = Interlocked.Exchange(ref _buffer, null);
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
        else if (remaining < 0)
        {
            throw new InvalidOperationException("SharedFrame released more often than referenced.");
        }
    }
}
