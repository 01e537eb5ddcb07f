using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;

namespace Realtime.Gateway.Auth;

/// <summary>
/// Identities of tokens this node has validated recently, so a client that reconnects, or a
/// service that calls again, with the same token skips parsing it, checking its signature and
/// building its grants. Bounded: at most <see cref="AuthOptions.ValidatedTokenCacheSize"/> tokens.
/// </summary>
/// <remarks>
/// Entries are keyed by the token's SHA-256, never by the token: a heap dump shows no tokens
/// from here, and only the same token (the same bytes, signature included) finds an entry. What
/// can change after a token was validated is checked again on every hit by
/// <see cref="TokenValidator"/>: its <c>exp</c>, its carrier's rule and the revocation list. An
/// entry made under an older key set (<see cref="SigningKeys.Generation"/>) is not used, so a key
/// withdrawn from the JWKS stops its tokens at once. Two generations of half the size each: when
/// the newer one is full it becomes the older one and the oldest is dropped, so recently used
/// tokens stay without any bookkeeping per hit beyond moving an entry up once.
/// </remarks>
internal sealed class ValidatedTokens
{
    private const int StackHashLimit = 1024;
    private readonly int _generationSize;
    private readonly Lock _rotation = new();
    private Generation _current = new();
    private Generation _previous = new();

    public ValidatedTokens(int capacity) => _generationSize = capacity / 2;

    public bool Enabled => _generationSize > 0;

    /// <summary>The key of a token: its SHA-256.</summary>
    public static TokenHash Hash(string token)
    {
        var length = Encoding.UTF8.GetMaxByteCount(token.Length);
        byte[]? rented = null;
        var bytes = length <= StackHashLimit ? stackalloc byte[StackHashLimit] : (rented = ArrayPool<byte>.Shared.Rent(length));
        try
        {
            var written = Encoding.UTF8.GetBytes(token, bytes);
            Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
            SHA256.HashData(bytes[..written], digest);
            return new TokenHash(
                BinaryPrimitives.ReadUInt64LittleEndian(digest),
                BinaryPrimitives.ReadUInt64LittleEndian(digest[8..]),
                BinaryPrimitives.ReadUInt64LittleEndian(digest[16..]),
                BinaryPrimitives.ReadUInt64LittleEndian(digest[24..]));
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    /// <summary>The identity validated for this token under key set <paramref name="keysGeneration"/>, if any.</summary>
    public ClientIdentity? Find(in TokenHash token, int keysGeneration)
    {
        if (!Enabled)
        {
            return null;
        }

        if (_current.Entries.TryGetValue(token, out var entry))
        {
            return entry.KeysGeneration == keysGeneration ? entry.Identity : null;
        }

        if (!_previous.Entries.TryGetValue(token, out entry) || entry.KeysGeneration != keysGeneration)
        {
            return null;
        }

        // Still in use: keep it past the next rotation.
        Add(token, entry);
        return entry.Identity;
    }

    /// <summary>Remembers a token that validated as <paramref name="identity"/> under key set <paramref name="keysGeneration"/>.</summary>
    public void Add(in TokenHash token, int keysGeneration, ClientIdentity identity)
    {
        if (Enabled)
        {
            Add(token, new Entry(identity, keysGeneration));
        }
    }

    private void Add(in TokenHash token, Entry entry)
    {
        var current = _current;
        if (!current.Entries.TryAdd(token, entry))
        {
            current.Entries[token] = entry;
            return;
        }

        if (Interlocked.Increment(ref current.Count) < _generationSize)
        {
            return;
        }

        lock (_rotation)
        {
            if (ReferenceEquals(_current, current))
            {
                _previous = current;
                _current = new Generation();
            }
        }
    }

    private sealed class Generation
    {
        public readonly ConcurrentDictionary<TokenHash, Entry> Entries = new();
        public int Count;
    }

    private readonly record struct Entry(ClientIdentity Identity, int KeysGeneration);
}

/// <summary>A token's SHA-256, as four words.</summary>
internal readonly record struct TokenHash(ulong A, ulong B, ulong C, ulong D);
