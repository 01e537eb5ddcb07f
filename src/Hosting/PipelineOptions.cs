using System.ComponentModel.DataAnnotations;
using Realtime.Contracts;

namespace Realtime.Hosting;

/// <summary>Settings that every process of one deployment must agree on. Section <c>Pipeline</c>.</summary>
public sealed class PipelineOptions
{
    public const string Section = "Pipeline";

    /// <summary>Prefix of every topic and Redis key (see <see cref="PipelineNames"/>).</summary>
    [Required]
    [RegularExpression("^[A-Za-z0-9._-]{1,64}$")]
    public string Namespace { get; set; } = PipelineNames.DefaultNamespace;
}
