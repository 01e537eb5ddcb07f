namespace Realtime.Ctl;

/// <summary>Command-line arguments: <c>--name value</c> pairs and positional values.</summary>
internal sealed class Arguments
{
    /// <summary>Options that take no value.</summary>
    private static readonly HashSet<string> Flags = new(StringComparer.Ordinal) { "json", "yes" };

    private readonly Dictionary<string, string> _named = new(StringComparer.Ordinal);

    public List<string> Positional { get; } = [];

    public static Arguments Parse(IEnumerable<string> args)
    {
        var parsed = new Arguments();
        using var e = args.GetEnumerator();
        while (e.MoveNext())
        {
            var arg = e.Current;
            if (arg.StartsWith("--", StringComparison.Ordinal))
            {
                var name = arg[2..];
                if (Flags.Contains(name))
                {
                    parsed._named[name] = "true";
                    continue;
                }

                if (!e.MoveNext())
                {
                    throw new ArgumentException($"--{name} needs a value.");
                }

                parsed._named[name] = e.Current;
            }
            else
            {
                parsed.Positional.Add(arg);
            }
        }

        return parsed;
    }

    public string Required(string name) =>
        _named.TryGetValue(name, out var value) && value.Length > 0 ? value : throw new ArgumentException($"--{name} is required.");

    public string? Optional(string name) => _named.GetValueOrDefault(name);

    public bool Flag(string name) => _named.ContainsKey(name);
}
