// TensorRT IPluginV3 "Correlation" (namespace "edgeflow", version "1") and its IPluginCreatorV3One.
//
// The ONNX parser maps a node with op_type "Correlation" (plugin_namespace "edgeflow") to this creator and
// passes the node's attributes as plugin fields; the same six fields are what the plugin serializes into
// the engine, so build-time and deserialization-time creation share one parser (parseAttributes).
//
// One source for TensorRT 10.x (JetPack 6 ships 10.3) and 11.x: only the IPluginV3 family is used (the V2
// interfaces are deprecated), and version differences are guarded with NV_TENSORRT_MAJOR / MINOR.
#pragma once

#include <NvInferRuntime.h>
#include <NvInferVersion.h>

#include <cstdint>
#include <string>
#include <vector>

#if !defined(NV_TENSORRT_MAJOR) || NV_TENSORRT_MAJOR < 10
#error "the edgeflow Correlation plugin needs TensorRT >= 10 (IPluginV3); JetPack 6 ships TensorRT 10.3"
#endif

namespace edgeflow
{
namespace trt
{

constexpr char const* kPLUGIN_NAME = "Correlation";
constexpr char const* kPLUGIN_VERSION = "1";
constexpr char const* kPLUGIN_NAMESPACE = "edgeflow";

//! The ONNX node's attributes, in the order of the plugin fields.
struct CorrelationAttributes
{
    int32_t maxDisplacement{0};
    int32_t kernelSize{1};
    int32_t stride1{1};
    int32_t stride2{1};
    int32_t padSize{0};
    int32_t normalize{1};
};

//! Fill `attrs` from plugin fields (ONNX attributes or the engine's serialized fields). Missing optional
//! fields keep their defaults (pad_size defaults to max_displacement). Returns "" or an error message.
std::string parseAttributes(nvinfer1::PluginFieldCollection const* fc, CorrelationAttributes& attrs) noexcept;

//! "" when the attributes are valid, else what is wrong.
std::string validateAttributes(CorrelationAttributes const& attrs) noexcept;

class CorrelationPlugin final : public nvinfer1::IPluginV3,
                                public nvinfer1::IPluginV3OneCore,
                                public nvinfer1::IPluginV3OneBuild,
                                public nvinfer1::IPluginV3OneRuntime
{
public:
    explicit CorrelationPlugin(CorrelationAttributes const& attrs);
    CorrelationPlugin(CorrelationPlugin const& other);
    CorrelationPlugin& operator=(CorrelationPlugin const&) = delete;
    ~CorrelationPlugin() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

    // IPluginV3OneBuild
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
        nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
        nvinfer1::DimsExprs const* shapeInputs, int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs,
        int32_t nbOutputs, nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
    int32_t getNbOutputs() const noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;
    char const* getTimingCacheID() noexcept override;
    char const* getMetadataString() noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::PluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

    CorrelationAttributes const& attributes() const noexcept
    {
        return mAttrs;
    }

private:
    void initFields();

    CorrelationAttributes mAttrs;
    std::string mDescription; //!< attribute string: timing-cache id and metadata
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mFieldCollection{};
};

class CorrelationPluginCreator final : public nvinfer1::IPluginCreatorV3One
{
public:
    CorrelationPluginCreator();
    ~CorrelationPluginCreator() override = default;

    nvinfer1::IPluginV3* createPlugin(
        char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

private:
    std::vector<nvinfer1::PluginField> mFieldNames;
    nvinfer1::PluginFieldCollection mFieldCollection{};
};

} // namespace trt
} // namespace edgeflow

//! Plugin-library entry points (trtexec --dynamicPlugins, IPluginRegistry::loadLibrary, engines that
//! serialize the library). Static registration at load time covers trtexec --staticPlugins and ctypes.CDLL.
//! NV_TENSORRT_MAJOR * 10000 + MINOR * 100 + PATCH of the headers this library was compiled against, so
//! the runtime can refuse a library built for another TensorRT.
extern "C" __attribute__((visibility("default"))) int edgeflow_plugin_tensorrt_version(void);
extern "C" __attribute__((visibility("default"))) void setLoggerFinder(nvinfer1::ILoggerFinder* finder);
extern "C" __attribute__((visibility("default"))) nvinfer1::IPluginCreatorInterface* const* getCreators(
    int32_t& nbCreators);
