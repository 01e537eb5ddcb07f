using System.ComponentModel.DataAnnotations;

namespace Realtime.Hosting;

/// <summary>Where the routing table lives. Section <c>Redis</c>.</summary>
public sealed class RedisOptions
{
    public const string Section = "Redis";

    /// <summary>StackExchange.Redis configuration string, e.g. <c>127.0.0.1:6379,password=...</c>.</summary>
    [Required]
    public string Configuration { get; set; } = "127.0.0.1:6379";
}
